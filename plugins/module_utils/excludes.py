# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The entries a backup leaves out of a volume: the option ``exclude``, with restic 0.14's pattern syntax.

A pattern is matched against an entry's path inside the volume, written as if the
volume's root were ``/`` (``/cache/x`` for the entry ``cache/x``), exactly as restic
0.14's ``--exclude`` matches a path (its ``internal/filter``):

* The pattern is cleaned first (``foo//bar/`` is ``foo/bar``), then split into
  components. Each component is a Go ``filepath.Match`` pattern of one path
  component: ``*`` (any characters), ``?`` (one character), ``[a-z]``, ``[^0-9]``
  (a class; ``^`` negates it), ``\\x`` (the character x itself). ``*`` never
  crosses a ``/``: it matches whole components only.
* The component ``**`` matches any number of components, none included (as restic
  documents it; see :func:`without_any_depth` for where its matcher falls short).
* A pattern with a leading ``/`` is anchored at the volume's root: its components
  match the first components of the path (``/cache`` matches ``cache`` and
  ``cache/x``, not ``app/cache``). Any other pattern matches wherever its
  components match consecutive components of the path (``cache`` matches ``cache``,
  ``cache/x`` and ``app/cache/x``; not ``cache2`` nor ``mycache``).
* A pattern that starts with ``!`` cancels the matches of the patterns before it
  (``*.log`` then ``!keep.log``); a later pattern can match again. ``\\!x`` is the
  pattern of a name that starts with ``!``.
* An excluded directory leaves out everything below it, and a ``!`` pattern cannot
  bring back an entry below an excluded directory (restic, like gitignore, does
  not enter it).

Patterns that cannot be right are refused (:class:`Excludes` raises DockerError):
an empty one, one that is only ``!``, a malformed ``filepath.Match`` component
(an unclosed ``[``, a lone trailing ``\\``), one whose cleaned form is the root
itself (``/``) or has a ``.`` or ``..`` component (no path inside a volume has one).

* :func:`of` -- the option's value checked and compiled, or None when it is empty.
* :meth:`Excludes.matches` -- restic's decision for one path (the pure function).
* :meth:`Excludes.tree_filter` -- a :class:`TreeFilter` for an entry stream in tar order,
  which also leaves out what lies below an excluded directory.
* :meth:`Excludes.restic_patterns` -- the same patterns for restic's ``--exclude`` when
  it reads the volume at a directory of this host (restic 0.14's own matcher misses some
  matches of a pattern with two ``**``; the patterns given to it make up for that).

The walk of a tree on this host (fdtree.walk's ``excluded``) and the tar stream of
a helper container (manifest.TarManifest's ``exclude``) take an :class:`Excludes`
(or its ``matches``), so both ways of reading a volume leave out the same entries.
"""

from __future__ import annotations

import posixpath
import re

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

# The component that matches any number of components.
ANY_DEPTH = "**"
# The characters special to a pattern's component (restic compares a component without them as it is).
_META = "\\[]*?"


class BadPattern(ValueError):
    """Why a pattern is refused (the message is about the pattern alone)."""


def clean(path):
    """Go's path.Clean: one '/' between components, no '.', '..' applied, no trailing '/', '.' for nothing."""
    cleaned = posixpath.normpath(path) if path else "."
    if cleaned.startswith("//"):  # POSIX keeps two leading slashes, Go does not
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def _escaped(part, i):
    """(character, next index) of one item of a character class at part[i], as Go's getEsc reads it."""
    if i >= len(part) or part[i] in "-]":
        raise BadPattern("has a malformed character class in %r" % part)
    if part[i] == "\\":
        i += 1
        if i >= len(part):
            raise BadPattern("has a malformed character class in %r" % part)
    char = part[i]
    i += 1
    if i >= len(part):  # the class is not closed
        raise BadPattern("has an unclosed '[' in %r" % part)
    return char, i


def _class_item(char):
    return "\\" + char if char in "\\]^-[" else re.escape(char)


def _char_class(part, i):
    """(regex, next index) of the character class that starts after the '[' at part[i - 1]."""
    negated = i < len(part) and part[i] == "^"
    if negated:
        i += 1
    ranges = []
    while True:
        if i < len(part) and part[i] == "]" and ranges:
            i += 1
            break
        low, i = _escaped(part, i)
        high = low
        if part[i] == "-":
            high, i = _escaped(part, i + 1)
        ranges.append((low, high))
    # Go lets a range run backwards and match nothing; Python's re refuses one
    items = "".join(_class_item(lo) if lo == hi else _class_item(lo) + "-" + _class_item(hi)
                    for lo, hi in ranges if lo <= hi)
    if negated:
        return "[^%s/]" % items, i
    return ("(?!/)[%s]" % items if items else "(?!)"), i


def component_regex(part):
    """The regular expression of one component of a pattern, a Go filepath.Match pattern (BadPattern if malformed).

    It matches within one path component: never a '/'.
    """
    out = []
    i = 0
    while i < len(part):
        char = part[i]
        if char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "\\":
            if i + 1 >= len(part):
                raise BadPattern("ends a component with a lone '\\' in %r" % part)
            out.append(re.escape(part[i + 1]))
            i += 2
        elif char == "[":
            regex, i = _char_class(part, i + 1)
            out.append(regex)
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)


def compile_pattern(pattern):
    """(negated, compiled regex, anchored) of one pattern; BadPattern says why one is refused.

    The regex is matched against '/' + the entry's path (see :meth:`Excludes.matches`).
    """
    if not isinstance(pattern, str) or not pattern:
        raise BadPattern("is empty")
    negated = pattern.startswith("!")
    body = pattern[1:] if negated else pattern
    if not body:
        raise BadPattern("is only '!', which cancels nothing")
    cleaned = clean(body)
    anchored = cleaned.startswith("/")
    parts = cleaned.lstrip("/").split("/") if cleaned != "/" else []
    if not parts:
        raise BadPattern("is the volume's root itself; an exclude names entries inside the volume")
    if cleaned == "." or ".." in parts:
        raise BadPattern("has a '.' or '..' component once cleaned (%r), which no path inside a volume has"
                         % cleaned)
    tokens = ["(?:/[^/]+)*" if part == ANY_DEPTH else "/" + component_regex(part) for part in parts]
    regex = "".join(tokens) + r"(?=/|\Z)"
    return negated, re.compile(regex), anchored


class Excludes:
    """Checked exclude patterns (restic 0.14's syntax, see the file's docstring) and what they leave out.

    subject names the volume in messages ("volume 'db'").
    """

    def __init__(self, patterns, subject="the volume", option="exclude"):
        self.patterns = tuple(patterns)
        self.subject = subject
        compiled = []
        for pattern in self.patterns:
            try:
                compiled.append(compile_pattern(pattern))
            except BadPattern as exc:
                raise DockerError("%s: the pattern %r %s; fix or remove it (patterns follow restic's --exclude)"
                                  % (option, pattern, exc)) from None
        self._compiled = [(negated, regex.match if anchored else regex.search)
                          for negated, regex, anchored in compiled]
        self._negations = any(negated for negated, _find in self._compiled)

    def __bool__(self):
        return bool(self.patterns)

    def matches(self, path):
        """Whether restic 0.14 excludes the entry at path (relative to the volume's root, '' is the root).

        Only this path's own match counts: an entry below an excluded directory is never
        asked about (the walk does not enter it; :class:`TreeFilter` remembers it).
        """
        if not path:
            return False
        subject = "/" + path
        matched = False
        for negated, find in self._compiled:
            if negated:
                if matched and find(subject):
                    matched = False
            elif not matched and find(subject):
                matched = True
                if not self._negations:
                    return True
        return matched

    def tree_filter(self):
        """A new :class:`TreeFilter` of these patterns, for one stream of entries."""
        return TreeFilter(self)

    def restic_patterns(self, root):
        """These patterns for restic's --exclude when it backs up the volume at the absolute directory root.

        Anchored patterns are anchored at root; the others become ``root/**/pattern``,
        so that they match below root only, never a component of root itself. The
        characters of root that are special to a pattern are escaped. A pattern with
        ``**`` comes with its variants without some of them (see :func:`without_any_depth`),
        so that restic's matcher leaves out what :meth:`matches` leaves out.
        """
        base = "".join("\\" + c if c in _META else c for c in clean(root).rstrip("/"))
        out = []
        for pattern in self.patterns:
            negated = pattern.startswith("!")
            cleaned = clean(pattern[1:] if negated else pattern)
            tail = cleaned if cleaned.startswith("/") else "/" + ANY_DEPTH + "/" + cleaned
            out.extend(("!" if negated else "") + variant for variant in without_any_depth(base + tail))
        return out


def without_any_depth(pattern):
    """pattern and, when it has two ``**`` components or more, its variants without some of them, pattern first.

    restic 0.14 (and its later releases, when this was written) bounds the expansion
    of a ``**`` as if every further ``**`` took at least one component, so a pattern
    with two of them misses the paths where a later one matches none (``/a/**/b/**/c`` misses ``/a/b/c`` but
    excludes ``/a/b/c/d``). A variant without those ``**`` matches such a path, and
    every variant matches only paths the pattern matches: together, consecutive in
    the list, they exclude (or with ``!`` include again) exactly what the pattern means.
    """
    parts = pattern.split("/")
    stars = [i for i, part in enumerate(parts) if part == ANY_DEPTH]
    if len(stars) < 2:
        return [pattern]
    variants = []
    for mask in range(1 << len(stars)):
        dropped = {stars[bit] for bit in range(len(stars)) if mask >> bit & 1}
        variant = "/".join(part for i, part in enumerate(parts) if i not in dropped)
        if variant not in variants:
            variants.append(variant)
    return variants


class TreeFilter:
    """The excludes applied to a stream of entries in which a directory comes before what it holds (tar order).

    :meth:`drops` answers for each entry in turn and remembers the directories it
    dropped, so that everything below them is dropped too.
    """

    def __init__(self, excludes):
        self.excludes = excludes
        self.dropped = set()

    def below_dropped(self, path):
        """Whether a directory above path was dropped."""
        cut = path.find("/")
        while cut != -1:
            if path[:cut] in self.dropped:
                return True
            cut = path.find("/", cut + 1)
        return False

    def left_out(self, path):
        """Whether the entry at path is left out (without remembering anything)."""
        return bool(path) and (self.below_dropped(path) or self.excludes.matches(path))

    def drops(self, path, is_dir=False, link=None):
        """Whether to leave out the entry at path (relative, '' is the root, never dropped).

        link is the path of the entry a hard link names (tar: its first name). A kept
        hard link to a dropped entry cannot be written from a stream (the content went
        with the dropped name): DockerError.
        """
        if not path:
            return False
        if self.below_dropped(path):
            return True
        if self.excludes.matches(path):
            if is_dir:
                self.dropped.add(path)
            return True
        if link is not None and self.left_out(link):
            raise DockerError(
                "%s: %r is a hard link of %r, which exclude leaves out; through the Engine API its content comes "
                "only with that name. Exclude both names or neither, or read the volume with method: local"
                % (self.excludes.subject, path, link))
        return False


def of(patterns, subject="the volume", option="exclude"):
    """The Excludes of an option's value (a list of patterns), or None when there are none."""
    if not patterns:
        return None
    return Excludes(patterns, subject, option)
