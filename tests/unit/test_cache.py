"""cache.seal and cache.verify: a build is checked before every use, by its files' stamps (no reading) and, when a
stamp moved, by their SHA-256."""
import hashlib
import json
import os
import shutil

from mrhooker import cache


def sealed(tmp_path, name="build"):
    d = tmp_path / name
    d.mkdir()
    (d / "lib.so").write_bytes(b"\x7fELF" + bytes(range(256)) * 64)
    (d / "guard").write_bytes(b"#!guard\n")
    cache.seal(str(d), ["lib.so", "guard"], {"symbols": ["foo"]})
    return d


def test_an_intact_build_passes_without_being_read(tmp_path, monkeypatch):
    d = sealed(tmp_path)
    manifest = json.loads((d / cache.MANIFEST).read_text())
    assert manifest["files"]["lib.so"] == hashlib.sha256((d / "lib.so").read_bytes()).hexdigest()
    assert set(manifest["stamps"]) == {"lib.so", "guard"}

    def no_reading(path):
        raise AssertionError("%s was hashed although its stamp is as sealed" % path)

    monkeypatch.setattr(cache, "_file_sha256", no_reading)
    assert cache.verify(str(d))["symbols"] == ["foo"]


def test_a_file_altered_in_place_fails_even_with_its_size_and_times_put_back(tmp_path):
    d = sealed(tmp_path)
    lib = d / "lib.so"
    st = os.stat(lib)
    with open(lib, "r+b") as f:   # one byte, same size
        f.seek(100)
        f.write(b"\xcc")
    os.utime(lib, ns=(st.st_atime_ns, st.st_mtime_ns))   # mtime back as it was: ctime can't be put back
    assert os.stat(lib).st_size == st.st_size and os.stat(lib).st_mtime_ns == st.st_mtime_ns
    assert cache.verify(str(d)) is None


def test_truncated_missing_or_replaced_files_fail(tmp_path):
    d = sealed(tmp_path)
    os.truncate(d / "lib.so", 10)
    assert cache.verify(str(d)) is None
    d = sealed(tmp_path, "b")
    os.unlink(d / "guard")
    assert cache.verify(str(d)) is None
    d = sealed(tmp_path, "c")
    os.unlink(d / "guard")
    os.symlink("/bin/true", d / "guard")   # not a regular file
    assert cache.verify(str(d)) is None


def test_a_copied_build_is_hashed_once_then_known_by_its_new_stamps(tmp_path, monkeypatch):
    d = sealed(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(d, copy)   # new inodes and times, the same bytes
    hashed = []
    real = cache._file_sha256
    monkeypatch.setattr(cache, "_file_sha256", lambda path: hashed.append(path) or real(path))
    assert cache.verify(str(copy)) is not None and len(hashed) == 2
    assert cache.verify(str(copy)) is not None and len(hashed) == 2   # its stamps remembered: not hashed again


def test_a_manifest_without_stamps_is_checked_by_hashing(tmp_path):
    d = sealed(tmp_path)
    manifest = json.loads((d / cache.MANIFEST).read_text())
    del manifest["stamps"]   # a build sealed by an earlier mrhooker
    (d / cache.MANIFEST).write_text(json.dumps(manifest))
    assert cache.verify(str(d)) is not None
    with open(d / "lib.so", "r+b") as f:
        f.write(b"X")
    assert cache.verify(str(d)) is None


def test_keys_are_sha256_of_their_parts():
    assert cache.key(["a", b"b"], length=64) == hashlib.sha256(b"a\0b\0").hexdigest()
