"""studio.cache: artefacts keyed by config and code, built once, checksummed, rebuilt when bad."""

import os
import time

import pytest

from studio import cache


def _builder(calls):
    def build(folder):
        calls.append(folder)
        (folder / "weights.bin").write_bytes(b"\x01" * 4096)
        (folder / "info.json").write_text('{"steps": 3}')

    return build


def test_built_once_then_reused_and_keyed_by_config_and_code(tmp_path):
    calls = []
    a = cache.cached("toy", {"n": 1}, _builder(calls), code="c1", root=tmp_path, log=lambda *_: None)
    b = cache.cached("toy", {"n": 1}, _builder(calls), code="c1", root=tmp_path, log=lambda *_: None)
    assert a == b and len(calls) == 1 and (a / cache.CHECKSUMS).is_file()
    assert cache.cached("toy", {"n": 2}, _builder(calls), code="c1", root=tmp_path) != a  # config
    assert cache.cached("toy", {"n": 1}, _builder(calls), code="c2", root=tmp_path) != a  # code
    assert len(calls) == 3


@pytest.mark.parametrize("damage", ["truncate", "zero", "delete"])
def test_a_damaged_entry_is_named_moved_aside_and_rebuilt(tmp_path, damage):
    calls, lines = [], []
    folder = cache.cached("toy", {"n": 1}, _builder(calls), code="c", root=tmp_path, log=lines.append)
    target = folder / "weights.bin"
    if damage == "truncate":
        target.write_bytes(b"\x01" * 100)
    elif damage == "zero":  # same size, other bytes, later mtime
        time.sleep(0.01)
        target.write_bytes(b"\x00" * 4096)
    else:
        target.unlink()
    again = cache.cached("toy", {"n": 1}, _builder(calls), code="c", root=tmp_path, log=lines.append)
    assert again == folder and len(calls) == 2 and target.read_bytes() == b"\x01" * 4096
    assert len(lines) == 1 and "weights.bin" in lines[0] and "moved aside" in lines[0]
    assert len(list(tmp_path.glob("toy/*.bad-*"))) == 1  # kept for a look, not deleted


def test_a_failed_build_leaves_nothing_and_stale_temporary_builds_are_removed(tmp_path):
    def fails(folder):
        (folder / "half").write_text("x")
        raise RuntimeError("planted")

    with pytest.raises(RuntimeError, match="planted"):
        cache.cached("toy", {"n": 1}, fails, code="c", root=tmp_path)
    assert not [p for p in (tmp_path / "toy").iterdir() if not p.name.endswith(".lock")]
    key = cache.cache_key({"n": 1}, "c")
    stale = tmp_path / "toy" / f"{key}.tmp-999999"  # what a killed builder leaves
    stale.mkdir()
    (stale / "big.npy").write_bytes(b"0" * 1000)
    cache.cached("toy", {"n": 1}, _builder([]), code="c", root=tmp_path)
    assert not stale.exists()


def test_code_fingerprint_follows_imports_and_ignores_what_is_not_imported():
    mods = cache.code_modules("studio.engine")
    assert "studio.models.video_lm" in mods and "studio.data.video" in mods  # imported, transitively
    assert not any(m.startswith(("studio.studies", "studio.workbench")) for m in mods)
    assert "studio.figures" not in mods  # a plotting change reruns nothing of the engine
    assert cache.code_fingerprint("studio.engine") == cache.code_fingerprint("studio.engine:train_cell")
    assert cache.code_fingerprint("studio.engine") != cache.code_fingerprint("studio.data.video")
    with pytest.raises(ValueError, match="not a module of the studio package"):
        cache.code_fingerprint("numpy")


def test_an_unreadable_artefact_is_one_error_naming_its_folder(tmp_path):
    folder = cache.cached("toy", {"n": 1}, _builder([]), code="c", root=tmp_path)

    def load(f):
        raise OSError("mmap length is greater than file size")

    with pytest.raises(cache.CacheError, match=f"toy/{folder.name}.*delete that folder"):
        cache.load_checked(folder, load)
    assert os.path.isdir(folder)


@pytest.mark.parametrize("where", ["entry", "file"])
def test_a_symlinked_entry_is_refused_even_with_matching_checksums(tmp_path, where):
    """An attacker (or a careless copy) links the entry or one of its files outside the cache and
    rewrites CHECKSUMS.json to match: the link is refused, moved aside (the link, not its target) and
    the entry rebuilt from scratch."""
    root, outside = tmp_path / "cache", tmp_path / "outside"
    calls, lines = [], []
    folder = cache.cached("toy", {"n": 1}, _builder(calls), code="c", root=root, log=lines.append)
    outside.mkdir()
    (outside / "weights.bin").write_bytes(b"\x02" * 4096)
    (outside / "info.json").write_text('{"steps": 9}')
    if where == "entry":
        import shutil

        shutil.rmtree(folder)
        cache.write_checksums(outside)
        folder.symlink_to(outside, target_is_directory=True)
    else:
        (folder / "weights.bin").unlink()
        (folder / "weights.bin").symlink_to(outside / "weights.bin")
        cache.write_checksums(folder)  # the checksums now vouch for the linked file
    cache._verified.clear()
    again = cache.cached("toy", {"n": 1}, _builder(calls), code="c", root=root, log=lines.append)
    assert again == folder and not folder.is_symlink() and len(calls) == 2
    assert (folder / "weights.bin").read_bytes() == b"\x01" * 4096 and not (folder / "weights.bin").is_symlink()
    assert len(lines) == 1 and "symbolic link" in lines[0] and "moved aside" in lines[0]
    assert (outside / "weights.bin").read_bytes() == b"\x02" * 4096  # the link's target is left alone
