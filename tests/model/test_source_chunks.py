"""The code part of the background text: runs of non-blank source lines from .py files only."""
import io
import tarfile

from model.background import source_chunks


def _tar(files: dict[str, str]) -> tarfile.TarFile:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return tarfile.open(fileobj=buf)


def test_chunks_are_runs_of_non_blank_python_lines():
    src = "\n\n".join(f"x{i} = {i}" for i in range(10))  # 10 statements, blank lines between
    chunks = source_chunks(_tar({"pkg/a.py": src, "pkg/notes.txt": "not code\n" * 20}), lines=4, stride=2)
    assert chunks[0] == "x0 = 0\nx1 = 1\nx2 = 2\nx3 = 3"
    assert chunks[1].startswith("x2 = 2\n")
    assert chunks[-1] == "x6 = 6\nx7 = 7\nx8 = 8\nx9 = 9"
    assert len(chunks) == 4  # starts 0, 2, 4, 6
    assert all("not code" not in c for c in chunks)


def test_a_file_shorter_than_a_chunk_gives_none():
    assert source_chunks(_tar({"short.py": "a = 1\nb = 2\n"}), lines=4, stride=2) == []
    assert source_chunks(_tar({"four.py": "a\nb\nc\nd\n"}), lines=4, stride=2) == ["a\nb\nc\nd"]
