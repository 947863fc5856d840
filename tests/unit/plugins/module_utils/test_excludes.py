"""Exclude patterns: restic 0.14's --exclude decisions, the tree filter, and the patterns given to restic.

The product compiles a pattern into one regular expression. The reference here is a
line-by-line port of restic 0.14's ``internal/filter`` (``preparePattern``, ``match``
with its ``**`` expansion, ``list``) and of Go's ``path/filepath.Match``: the two must
agree on every path, which a seeded random comparison checks beside the examples of
restic's documentation. When the ``restic`` binary is installed, a dry-run backup of a
small tree checks the translated patterns against restic itself.
"""

import io
import os
import random
import re
import shutil
import subprocess
import tarfile

import pytest

from ansible_collections.persist.docker.plugins.module_utils import excludes, manifest, tar_stream
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

# ---------------------------------------------------------------- the reference: restic 0.14 and Go, ported


class GoBadPattern(Exception):
    pass


def go_scan_chunk(pattern):
    star = False
    while pattern and pattern[0] == "*":
        pattern = pattern[1:]
        star = True
    inrange = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif c == "[":
            inrange = True
        elif c == "]":
            inrange = False
        elif c == "*" and not inrange:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def go_get_esc(chunk):
    if not chunk or chunk[0] in "-]":
        raise GoBadPattern
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise GoBadPattern
    r, rest = chunk[0], chunk[1:]
    if not rest:
        raise GoBadPattern
    return r, rest


def go_match_chunk(chunk, s):  # noqa: PLR0912 - a port, kept in Go's shape
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        c = chunk[0]
        if c == "[":
            r = None
            if not failed:
                r, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = False
            if chunk and chunk[0] == "^":
                negated = True
                chunk = chunk[1:]
            match = False
            nrange = 0
            while True:
                if chunk and chunk[0] == "]" and nrange > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = go_get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = go_get_esc(chunk[1:])
                if r is not None and lo <= r <= hi:
                    match = True
                nrange += 1
            if match == negated:
                failed = True
        elif c == "?":
            if not failed:
                if s[0] == "/":
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if c == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise GoBadPattern
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    if failed:
        return "", False
    return s, True


def go_match(pattern, name):
    """Go's path/filepath.Match (Unix); GoBadPattern when the pattern is malformed."""
    while pattern:
        star, chunk, pattern = go_scan_chunk(pattern)
        if star and chunk == "":
            return "/" not in name
        t, ok = go_match_chunk(chunk, name)
        if ok and (not t or pattern):
            name = t
            continue
        if star:
            found = False
            i = 0
            while i < len(name) and name[i] != "/":
                t, ok = go_match_chunk(chunk, name[i + 1:])
                if ok:
                    if not pattern and t:
                        i += 1
                        continue
                    name = t
                    found = True
                    break
                i += 1
            if found:
                continue
        while pattern:
            _star, chunk, pattern = go_scan_chunk(pattern)
            go_match_chunk(chunk, "")
        return False
    return not name


def go_clean(path):
    return excludes.clean(path)


def restic_split(path):
    parts = path.split("/")
    if parts[0] == "":
        parts[0] = "/"
    return parts


def restic_prepare(pattern):
    negated = pattern[0] == "!"
    if negated:
        pattern = pattern[1:]
    parts = ["" if part == "**" else part for part in restic_split(go_clean(pattern))]
    return negated, parts


def restic_part(part, name):
    if not any(c in part for c in "\\[]*?"):
        return part == name
    return go_match(part, name)


def restic_match(parts, strs):
    if "" in parts:
        pos = parts.index("")
        for i in range(len(strs) - len(parts) + 2):
            if restic_match(parts[:pos] + ["*"] * i + parts[pos + 1:], strs):
                return True
        return False
    if not parts:
        return not strs
    if len(parts) <= len(strs):
        low, high = 0, len(strs) - len(parts)
        if parts[0] == "/":
            high = 0
        elif strs[0] == "/":
            low = 1
        for offset in range(high, low - 1, -1):
            if all(restic_part(parts[i], strs[offset + i]) for i in range(len(parts) - 1, -1, -1)):
                return True
    return False


def restic_list(patterns, path):
    """restic 0.14's filter.List: whether the absolute path is excluded."""
    prepared = [restic_prepare(p) for p in patterns if p]
    strs = restic_split(path)
    negations = any(neg for neg, _parts in prepared)
    matched = False
    for negated, parts in prepared:
        m = restic_match(parts, strs)
        if negated:
            matched = matched and not m
        else:
            matched = matched or m
            if matched and not negations:
                break
    return matched


def as_documented(patterns):
    """patterns with the variants that make restic's matcher do what its documentation says of ``**``."""
    out = []
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        out.extend(("!" if negated else "") + v for v in excludes.without_any_depth(body))
    return out


def kept_by_reference(patterns, paths):
    """The paths restic keeps (as documented): neither the path nor a directory above it excluded."""
    patterns = as_documented(patterns)
    kept = set()
    for path in sorted(paths):
        parts = path.split("/")
        if all(not restic_list(patterns, "/" + "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            kept.add(path)
    return kept


def kept_by_filter(patterns, paths, dirs):
    tree = excludes.Excludes(patterns).tree_filter()
    return {p for p in sorted(paths) if not tree.drops(p, p in dirs)}


# ---------------------------------------------------------------- restic's documentation

@pytest.mark.parametrize("pattern, path, expected", [
    # "Patterns need to match on complete path components"
    ("foo", "dir1/foo/dir2/file", True),
    ("foo", "dir/foo", True),
    ("foo", "dir/foobar", False),
    ("foo", "barfoo", False),
    # "A trailing / is ignored, a leading / anchors the pattern at the root directory"
    ("/bin", "bin/bash", True),
    ("/bin", "usr/bin/restic", False),
    ("bin/", "usr/bin", True),
    # "Regular wildcards cannot be used to match over the directory separator"
    ("b*ash", "bin/bash", True),
    ("b*ash", "bin/ash", False),
    # "The pattern foo/**/bar matches"
    ("foo/**/bar", "dir1/foo/dir2/bar/file", True),
    ("foo/**/bar", "foo/bar/file", True),
    ("foo/**/bar", "tmp/foo/bar", True),
    ("foo/**/bar", "foo/barx", False),
    # the examples of the exclude file
    ("*.go", "src/main.go", True),
    ("*.c", "a.c", True),
    ("*.c", "a.cc", False),
    # classes, single characters, escapes
    ("[ab].txt", "a.txt", True),
    ("[^ab].txt", "a.txt", False),
    ("[^ab].txt", "c.txt", True),
    ("[a-c]?", "bz", True),
    ("?", "ab", False),
    ("\\*", "*", True),
    ("\\*", "x", False),
    ("\\!x", "!x", True),
    ("/a/**", "a", True),
    ("/a/**", "b/a", False),
    ("**", "anything/at/all", True),
    ("**/x", "x", True),
    ("/**/x", "a/b/x", True),
    ("x", "a\nx\n", False),
    ("x*", "a/x\ny", True),
])
def test_documented_examples(pattern, path, expected):
    assert excludes.Excludes([pattern]).matches(path) is expected
    assert restic_list([pattern], "/" + path) is expected


def test_negation_cancels_earlier_matches_and_a_later_pattern_matches_again():
    ex = excludes.Excludes(["*.log", "!keep.log", "keep*"])
    assert ex.matches("a.log") and ex.matches("keep.log") and ex.matches("keeper")
    ex = excludes.Excludes(["*.log", "!keep.log"])
    assert ex.matches("x/a.log") and not ex.matches("x/keep.log") and not ex.matches("x/b.txt")
    # restic: "once a directory is excluded, it is not possible to include files inside the directory"
    assert kept_by_filter(["cache", "!cache/keep"], ["cache", "cache/keep"], {"cache"}) == set()


def test_the_root_is_never_excluded():
    assert not excludes.Excludes(["**", "*"]).matches("")
    assert not excludes.Excludes(["*"]).tree_filter().drops("", True)


# ---------------------------------------------------------------- the regex against the port, at random

WORDS = ["a", "b", "foo", "bar", "foobar", "x.log", "keep.log", "!x", "*", "a b", "é", "[x]", "-"]
PIECES = ["a", "b", "foo", "bar", "*", "?", "**", "*.log", "f*", "*o*", "[ab]", "[^a]*", "[a-f]*", "b?r",
          "\\!x", "\\*", "keep.log", "[!-0]", "[^-]", "[z-a]", "[é]", "?o?", "a b", "\\[x]"]


def random_pattern(rng):
    parts = [rng.choice(PIECES) for _n in range(rng.randint(1, 3))]
    text = "/".join(parts)
    if rng.random() < 0.3:
        text = "/" + text
    if rng.random() < 0.1:
        text += "/"
    if rng.random() < 0.2:
        text = "!" + text
    return text


def random_tree(rng, size=60):
    paths, dirs = set(), set()
    for _n in range(size):
        depth = rng.randint(1, 4)
        parts = [rng.choice(WORDS) for _n in range(depth)]
        for n in range(1, depth):
            dirs.add("/".join(parts[:n]))
        paths.update("/".join(parts[:n]) for n in range(1, depth + 1))
    return paths, dirs


def test_the_compiled_patterns_agree_with_restics_algorithm():
    rng = random.Random(20240514)
    tried = 0
    for _n in range(300):
        patterns = [random_pattern(rng) for _n in range(rng.randint(1, 3))]
        paths, dirs = random_tree(rng)
        try:
            ex = excludes.Excludes(patterns)
        except DockerError:
            continue
        tried += 1
        documented = as_documented(patterns)
        for path in paths:
            assert ex.matches(path) == restic_list(documented, "/" + path), (patterns, path)
            if all(p.split("/").count("**") < 2 for p in patterns):
                assert ex.matches(path) == restic_list(patterns, "/" + path), (patterns, path)
        assert kept_by_filter(patterns, paths, dirs) == kept_by_reference(patterns, paths), patterns
    assert tried > 150


def test_restics_matcher_misses_a_pattern_with_two_any_depth_components_where_the_last_matches_nothing():
    """restic 0.14's own behaviour (the port): the exact path is missed, a longer one is matched."""
    assert not restic_list(["/a/**/b/**/c"], "/a/b/c") and restic_list(["/a/**/b/**/c"], "/a/b/c/d")
    assert restic_list(as_documented(["/a/**/b/**/c"]), "/a/b/c")
    assert excludes.Excludes(["/a/**/b/**/c"]).matches("a/b/c")
    assert excludes.without_any_depth("/a/**/b/**/c") == ["/a/**/b/**/c", "/a/b/**/c", "/a/**/b/c", "/a/b/c"]
    assert excludes.without_any_depth("/a/**/b") == ["/a/**/b"]


# ---------------------------------------------------------------- refused patterns

@pytest.mark.parametrize("pattern, why", [
    ("", "is empty"),
    ("!", "only '!'"),
    ("[a", "unclosed '['"),
    ("a[", "malformed character class"),
    ("[]a]", "malformed character class"),
    ("[-a]", "malformed character class"),
    ("[a-]", "malformed character class"),
    ("a\\", "lone '\\'"),
    ("/", "root itself"),
    ("!/", "root itself"),
    (".", "'.' or '..'"),
    ("a/..", "'.' or '..'"),
    ("../a", "'.' or '..'"),
])
def test_bad_patterns_are_refused_with_the_pattern_named(pattern, why):
    with pytest.raises(DockerError) as err:
        excludes.Excludes(["ok", pattern])
    assert why in str(err.value) and repr(pattern) in str(err.value) and str(err.value).startswith("exclude:")


@pytest.mark.parametrize("pattern", ["[a", "a\\", "[]a]", "[a-]"])
def test_refused_components_are_those_go_refuses(pattern):
    with pytest.raises(GoBadPattern):
        go_match(pattern, pattern)


def test_of_gives_none_without_patterns():
    assert excludes.of([]) is None and excludes.of(None) is None
    assert excludes.of(["a"]).patterns == ("a",)


# ---------------------------------------------------------------- the tree filter

def test_a_dropped_directory_drops_everything_below_it():
    tree = excludes.Excludes(["/cache"]).tree_filter()
    assert tree.drops("cache", is_dir=True)
    assert tree.drops("cache/a") and tree.drops("cache/sub", is_dir=True) and tree.drops("cache/sub/b")
    assert not tree.drops("cache2") and not tree.drops("app/cache")
    assert tree.dropped == {"cache"}


def test_a_kept_hard_link_to_a_dropped_file_is_refused():
    tree = excludes.Excludes(["*.tmp"], "volume 'db'").tree_filter()
    assert tree.drops("a.tmp")
    assert not tree.drops("b", link="c")
    with pytest.raises(DockerError) as err:
        tree.drops("b", link="a.tmp")
    assert "volume 'db'" in str(err.value) and "'b' is a hard link of 'a.tmp'" in str(err.value)
    assert "method: local" in str(err.value)
    assert tree.drops("c.tmp", link="a.tmp")  # both names left out: fine


# ---------------------------------------------------------------- the patterns given to restic

def test_restic_patterns_anchor_at_the_volume_and_escape_its_path():
    ex = excludes.Excludes(["/cache", "*.log", "!keep.log", "a//b/"])
    assert ex.restic_patterns("/var/lib/docker/volumes/v/_data/") == [
        "/var/lib/docker/volumes/v/_data/cache",
        "/var/lib/docker/volumes/v/_data/**/*.log",
        "!/var/lib/docker/volumes/v/_data/**/keep.log",
        "/var/lib/docker/volumes/v/_data/**/a/b",
    ]
    variants = ["!/r/**/x/**/y", "!/r/x/**/y", "!/r/**/x/y", "!/r/x/y"]
    assert excludes.Excludes(["!x/**/y"]).restic_patterns("/r") == variants
    assert ex.restic_patterns("/srv/x[1]*")[0] == "/srv/x\\[1\\]\\*/cache"


def test_restic_patterns_match_below_the_root_only():
    root = "/var/lib/docker/volumes/docker/_data"
    ex = excludes.Excludes(["docker", "_data", "/x", "!/x/keep"])
    translated = ex.restic_patterns(root)
    for path in ["docker", "a/_data", "x", "x/keep", "x/keep/more", "y", "a/docker/b", "_data"]:
        assert restic_list(translated, root + "/" + path) == ex.matches(path), path
    assert not restic_list(translated, root)


@pytest.mark.skipif(shutil.which("restic") is None, reason="the restic binary is not installed")
def test_restic_itself_leaves_out_what_the_filter_leaves_out(tmp_path):
    """A dry-run backup with the translated patterns lists exactly the entries the tree filter keeps.

    Each case has a tree of its own; their patterns, anchored at their trees, go to one run.
    """
    cases = [["*.log", "!keep.log"], ["foo/**/bar", "/cache"], ["\\!x", "b?c", "[a]"], ["**/deep", "/a/b"],
             ["/a/**/foo/**/bar"], ["foo/**/bar/**"]]
    names = ["a/x.log", "a/keep.log", "a/b/foo/bar", "foo/bar/deep", "foobar", "cache/c", "!x", "b c/d"]
    roots = [tmp_path / ("case%d[1]" % n) for n in range(len(cases))]
    args = ["restic", "backup", "--dry-run", "-vv", "--host", "unit"]
    for root, patterns in zip(roots, cases):
        for name in names:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text("x")
        for pattern in excludes.Excludes(patterns).restic_patterns(str(root)):
            args += ["--exclude", pattern]
    env = dict(os.environ, RESTIC_REPOSITORY=str(tmp_path / "repo"), RESTIC_PASSWORD="unit-test",
               RESTIC_CACHE_DIR=str(tmp_path / "cache"))
    subprocess.run(["restic", "init", "-q"], env=env, check=True, capture_output=True)
    out = subprocess.run(args + [str(root) for root in roots], env=env, check=True, capture_output=True,
                         text=True).stdout
    listed = re.findall(r"^new\s+(.*?)/?, saved in", out, re.M)
    for root, patterns in zip(roots, cases):
        paths = {str(p.relative_to(root)) for p in root.rglob("*")}
        dirs = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()}
        seen = {p[len(str(root)) + 1:] for p in listed if p.startswith(str(root) + "/")}
        assert seen == kept_by_filter(patterns, paths, dirs) == kept_by_reference(patterns, paths), patterns


# ---------------------------------------------------------------- applied to a tree on disk and to a tar stream

def excluded_tree(root):
    for name in ["app/cache/blob", "app/cache/sub/deep", "app/data.db", "app/x.log", "keep.log", "logs/a.log",
                 "top.txt", "cache/kept-anchored"]:
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(name)
    os.symlink("app", os.path.join(root, "applink"))
    os.link(os.path.join(root, "top.txt"), os.path.join(root, "app", "top-link"))
    os.makedirs(os.path.join(root, manifest.STAGING))


PATTERNS = ["app/cache", "*.log", "!keep.log", "/logs"]
EXPECTED = {"", "app", "app/data.db", "app/top-link", "applink", "cache", "cache/kept-anchored", "keep.log",
            "top.txt"}


def full_tar(root):
    return b"".join(bytes(c) for c in tar_stream.local_tar(root, [], True))


def test_the_walk_and_the_streams_leave_out_the_same_entries(tmp_path):
    root = str(tmp_path)
    excluded_tree(root)
    ex = excludes.Excludes(PATTERNS)
    walked = manifest.from_directory(root, exclude=ex)
    assert {e["path"] for e in walked} == EXPECTED
    entries = []
    local = b"".join(bytes(c) for c in tar_stream.local_tar(root, entries, True, exclude=ex))
    streamed = manifest.from_tar_stream(io.BytesIO(full_tar(root)), exclude=ex)
    builder = manifest.TarManifest(".", ex)
    forwarded = b"".join(tar_stream.tee_tar(iter([full_tar(root)]), builder, True, [0]))
    digest = manifest.digest(walked)
    assert manifest.digest(entries) == manifest.digest(streamed) == manifest.digest(builder.result()) == digest
    # what was written holds the kept entries only, and reads back to the same manifest
    for data in (local, forwarded):
        assert manifest.digest(manifest.from_tar_stream(io.BytesIO(data))) == digest
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            assert {manifest.tar_path(m.name) for m in archive} == EXPECTED
    # without exclude nothing changes: the stream is forwarded byte for byte
    plain = manifest.TarManifest(".")
    assert b"".join(tar_stream.tee_tar(iter([full_tar(root)]), plain, True, [0])) == full_tar(root)
    assert manifest.digest(plain.result()) == manifest.digest(manifest.from_directory(root))


def test_a_hard_link_whose_other_name_is_left_out(tmp_path):
    """On disk the kept name becomes the file; in a stream its content went with the dropped name."""
    root = str(tmp_path)
    excluded_tree(root)
    ex = excludes.Excludes(["/top.txt"], "volume 'v'")
    walked = {e["path"]: e for e in manifest.from_directory(root, exclude=ex)}
    assert "top.txt" not in walked and "hardlink" not in walked["app/top-link"]
    assert walked["app/top-link"]["sha256"]
    data = full_tar(root)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        linked = [m for m in archive if m.islnk()]
    assert manifest.tar_path(linked[0].linkname) == "top.txt"  # the walk yields a directory's entries first
    with pytest.raises(DockerError, match="volume 'v': 'app/top-link' is a hard link of 'top.txt'"):
        manifest.from_tar_stream(io.BytesIO(data), exclude=ex)
