"""A user's own video questions (studio.capture.hf.video_qa.load_items, the pretrained_video study's
items_file): every malformed line, field or video is one ParameterError naming the file, the line and the
field, and nothing is clipped, guessed or allocated from a header that claims too much."""

from __future__ import annotations

import json

import numpy as np
import pytest

from studio.capture.hf import video_qa as Q
from studio.errors import ParameterError
from studio.studies import pretrained_video as pv

GOOD = {"video": "good.npy", "question": "what colour?", "answer": "white", "candidates": ["black", "white"]}


def write_items(folder, *lines) -> str:
    """items.jsonl in folder: a good first line, then `lines` (dicts as JSON, str or bytes as they are)."""
    np.save(folder / "good.npy", np.full((4, 8, 8), 255, dtype=np.uint8))
    raw = [json.dumps(GOOD).encode()]
    for line in lines:
        raw.append(
            json.dumps(line).encode() if isinstance(line, dict) else line if isinstance(line, bytes) else line.encode()
        )
    (folder / "items.jsonl").write_bytes(b"\n".join(raw) + b"\n")
    return str(folder / "items.jsonl")


def refused(path, *fragments) -> str:
    """load_items refuses the file with one ParameterError whose message holds every fragment; the message."""
    with pytest.raises(ParameterError) as caught:
        Q.load_items(path)
    message = str(caught.value)
    assert "items.jsonl" in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def with_video(folder, array, **save) -> dict:
    np.save(folder / "clip.npy", array, **save)
    return {**GOOD, "video": "clip.npy"}


def test_valid_files_still_load_uint8_and_float_grey_and_rgb(tmp_path):
    np.save(tmp_path / "rgb.npy", np.full((3, 8, 8, 3), 0.5, dtype=np.float64))
    path = write_items(tmp_path, {**GOOD, "video": "rgb.npy", "task": "colour"}, "", "   ")
    good, rgb = Q.load_items(path)
    assert good.video.dtype == np.float32 and good.video.max() == 1.0 and good.task == "qa"
    assert rgb.video.shape == (3, 8, 8, 3) and rgb.video.dtype == np.float32 and rgb.task == "colour"
    assert rgb.candidates == ("black", "white")
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\r\n")
    assert len(Q.load_items(tmp_path / "bom.jsonl")) == 1  # a byte-order mark and CRLF line ends are fine


@pytest.mark.parametrize(
    "candidates, shown",
    [("cat dog", "got str 'cat dog'"), (["white", 3], "got list ['white', 3]"), ([], "got list []")],
)
def test_candidates_must_be_a_list_of_strings_not_a_string_searched_for_the_answer(tmp_path, candidates, shown):
    path = write_items(tmp_path, {**GOOD, "answer": "cat", "candidates": candidates})
    refused(path, "line 2, field 'candidates'", "expected a list of non-empty strings", shown)


def test_candidates_hold_the_answer_once_and_text_fields_are_strings(tmp_path):
    refused(write_items(tmp_path, {**GOOD, "candidates": ["white", "white"]}), "line 2, field 'candidates'", "once")
    refused(write_items(tmp_path, {**GOOD, "answer": "grey"}), "line 2, field 'candidates'", "not among")
    refused(write_items(tmp_path, {**GOOD, "question": ["what?"]}), "line 2, field 'question'", "non-empty string")
    refused(write_items(tmp_path, {**GOOD, "task": 7}), "line 2, field 'task'", "got int 7")


@pytest.mark.parametrize(
    "array, fragments",
    [
        (np.full((4, 8, 8), 200.0), ["values in [200, 200]", "[0, 1]"]),  # 0..255 floats: refused, not clipped
        (np.array([[[0.5, np.nan]]]), ["1 NaN or infinite"]),
        (np.zeros(16, dtype=np.uint8), ["shape (16,)", "(frames, H, W)"]),
        (np.zeros((0, 8, 8), dtype=np.uint8), ["shape (0, 8, 8)", "at least one frame"]),
        (np.zeros((2, 8, 8), dtype=np.complex64), ["dtype complex64", "uint8"]),
        (np.zeros((2, 8, 8), dtype=np.int16), ["dtype int16"]),
        (np.zeros((2, 8, 8, 2), dtype=np.uint8), ["2 channels", "1, 3 or 4"]),
        (np.zeros((2, 8, 8, 3, 1), dtype=np.uint8), ["shape (2, 8, 8, 3, 1)"]),
    ],
    ids=["float-0..255", "nan", "1-d", "0-frames", "complex", "int16", "2-channels", "5-d"],
)
def test_each_video_is_checked_for_dtype_shape_range_and_finite_values(tmp_path, array, fragments):
    path = write_items(tmp_path, with_video(tmp_path, array))
    refused(path, "line 2, field 'video'", "'clip.npy'", *fragments)


def test_object_arrays_are_refused_from_the_header_and_never_unpickled(tmp_path):
    path = write_items(tmp_path, with_video(tmp_path, np.array([None, {"a": 1}], dtype=object), allow_pickle=True))
    refused(path, "line 2, field 'video'", "dtype object")


@pytest.mark.parametrize(
    "line, fragments",
    [
        ('{"video": "good.npy", "question": ', ["line 2:", "not valid JSON", "column"]),  # was JSONDecodeError
        ("3", ["line 2:", "expected a JSON object", "got int 3"]),  # was TypeError
        ({**GOOD, "video": 5}, ["line 2, field 'video'", "got int 5"]),  # was TypeError
        ({**GOOD, "candidates": None}, ["line 2, field 'candidates'", "got null"]),  # was TypeError
        (b'{"question": "caf\xe9?"}', ["line 2:", "not UTF-8", "0xe9"]),  # was UnicodeDecodeError
        ({**GOOD, "video": "missing.npy"}, ["line 2, field 'video'", "'missing.npy' is not a file"]),
        ({**GOOD, "colour": "red"}, ["line 2, field 'colour'", "not a field"]),
        ({k: v for k, v in GOOD.items() if k != "answer"}, ["line 2, field 'answer'", "missing"]),
        ('{"answer": "white", "answer": "black"}', ["line 2, field 'answer'", "twice"]),
    ],
    ids=["json", "not-an-object", "video-int", "candidates-null", "utf8", "no-clip", "unknown", "missing", "twice"],
)
def test_malformed_lines_are_one_error_naming_file_line_and_field(tmp_path, line, fragments):
    refused(write_items(tmp_path, line), *fragments)


def test_a_video_that_is_not_npy_or_is_truncated_names_its_line(tmp_path):
    np.savez(tmp_path / "clip.npz", video=np.zeros((2, 8, 8), dtype=np.uint8))  # np.load gave an NpzFile
    refused(write_items(tmp_path, {**GOOD, "video": "clip.npz"}), "line 2, field 'video'", "not a .npy array")
    np.save(tmp_path / "clip.npy", np.zeros((4, 8, 8), dtype=np.uint8))
    (tmp_path / "clip.npy").write_bytes((tmp_path / "clip.npy").read_bytes()[:-10])
    refused(write_items(tmp_path, {**GOOD, "video": "clip.npy"}), "line 2, field 'video'", "truncated")


@pytest.mark.parametrize("content", [b"", b"\n  \n\n"])
def test_an_empty_file_is_refused_not_zero_items(tmp_path, content):
    (tmp_path / "items.jsonl").write_bytes(content)
    refused(tmp_path / "items.jsonl", "no items")
    with pytest.raises(ParameterError, match="no items"):  # the study's entry point: not `min() arg is an empty ...`
        pv.video_items(4, items_file=str(tmp_path / "items.jsonl"))


def test_a_header_claiming_a_huge_array_is_refused_before_anything_is_read(tmp_path, monkeypatch):
    header = {"descr": "<f4", "fortran_order": False, "shape": (100_000, 1_000, 1_000)}  # 373 GiB of float32
    with open(tmp_path / "huge.npy", "wb") as fp:
        np.lib.format.write_array_header_1_0(fp, header)

    def reader(original):
        def read(file, *args, **kwargs):  # the good first line's video is read as usual; huge.npy never is
            assert not str(getattr(file, "name", file)).endswith("huge.npy"), "huge.npy's data was read"
            return original(file, *args, **kwargs)

        return read

    for module, name in ((np, "load"), (np, "fromfile"), (np.lib.format, "read_array")):
        monkeypatch.setattr(module, name, reader(getattr(module, name)))
    path = write_items(tmp_path, {**GOOD, "video": "huge.npy"})
    message = refused(path, "line 2, field 'video'", "'huge.npy'", "(100000, 1000, 1000)", "381,469.7 MiB")
    assert f"at most {Q.MAX_VIDEO_BYTES / 2**20:g} MiB" in message and Q.MAX_VIDEO_BYTES == 512 * 2**20


def test_the_size_limit_counts_the_float32_copy_of_a_uint8_video(tmp_path, monkeypatch):
    monkeypatch.setattr(Q, "MAX_VIDEO_BYTES", 2**20)
    path = write_items(tmp_path, with_video(tmp_path, np.zeros((4, 256, 256), dtype=np.uint8)))  # 256 KiB saved
    assert len(Q.load_items(path)) == 2  # its float32 copy is 1 MiB: at the limit, taken
    path = write_items(tmp_path, with_video(tmp_path, np.zeros((5, 256, 256), dtype=np.uint8)))  # 320 KiB saved
    refused(path, "line 2, field 'video'", "1.2 MiB; at most 1 MiB")
