"""archive_check: what a restore may write, decided from the manifest member by member."""

import tarfile

import pytest

from ansible_collections.persist.docker.plugins.module_utils import archive_check, manifest


def entries():
    return [manifest.make_entry("", "dir", 0o755, 0, 0),
            manifest.make_entry("d", "dir", 0o755, 0, 0, mtime=1),
            manifest.make_entry("d/f", "file", 0o644, 0, 0, size=3, mtime=1),
            dict(manifest.make_entry("g", "file", 0o644, 0, 0, size=3, mtime=1), hardlink="d/f"),
            manifest.make_entry("other", "file", 0o644, 0, 0, size=3, mtime=1),
            manifest.make_entry("s", "symlink", 0o777, 0, 0, mtime=1, target="d"),
            manifest.make_entry("null", "char", 0o666, 0, 0, mtime=1, rdev="1:3")]


def member(name, kind=tarfile.REGTYPE, size=0, linkname="", dev=(0, 0)):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    info.devmajor, info.devminor = dev
    return info


@pytest.mark.parametrize("broken,message", [
    ([manifest.make_entry("s/x", "file", 0o644, 0, 0, size=0, mtime=1)], "'s/x' below 's', which it lists as a sym"),
    ([manifest.make_entry("/etc/x", "file", 0o644, 0, 0, size=0, mtime=1)], "it is absolute"),
    ([manifest.make_entry("d/../x", "file", 0o644, 0, 0, size=0, mtime=1)], "leads up with '..'"),
    ([dict(manifest.make_entry("h", "file", 0o644, 0, 0, size=0, mtime=1), hardlink="s")], "does not list as a file"),
])
def test_a_manifest_that_is_not_a_tree_is_refused(broken, message):
    with pytest.raises(archive_check.Refused, match=message):
        archive_check.index(entries() + broken)


def test_members_as_listed_pass_in_their_order():
    check = archive_check.MemberCheck(entries())
    for m in (member("./", tarfile.DIRTYPE), member("./d", tarfile.DIRTYPE), member("./d/f", size=3),
              member("./g", tarfile.LNKTYPE, linkname="./d/f"), member("./s", tarfile.SYMTYPE, linkname="d"),
              member("./null", tarfile.CHRTYPE, dev=(1, 3))):
        assert check(m) == manifest.tar_path(m.name)
    assert check(member("./%s/data/x" % manifest.STAGING, size=9)) is None  # left out, never written


@pytest.mark.parametrize("members,message", [
    ([member("./d/f", size=4)], "holds 4 bytes, but the manifest lists 3"),
    ([member("./s", tarfile.SYMTYPE, linkname="/etc")], "links to '/etc', but the manifest lists 'd'"),
    ([member("./null", tarfile.CHRTYPE, dev=(8, 0))], "is device 8:0, but the manifest lists 1:3"),
    ([member("./other", size=3), member("./g", tarfile.LNKTYPE, linkname="./other")], "not list them as links of one"),
    ([member("./g", tarfile.LNKTYPE, linkname="./d/f")], "which the archive has not written before"),
    ([member("./other", size=3), member("./other", size=3)], "comes twice"),
    ([member("./d", tarfile.SYMTYPE, linkname="/")], "'./d' is a symlink, but the manifest lists a dir"),
])
def test_members_that_differ_from_the_manifest_are_refused(members, message):
    check = archive_check.MemberCheck(entries())
    with pytest.raises(archive_check.Refused, match=message):
        for m in members:
            check(m)
