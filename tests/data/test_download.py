"""Downloads, offline, from a server on 127.0.0.1 serving archives built here: a good one, a wrong checksum,
a transfer cut mid-way and resumed, an entry that would escape the cache; and a task file fetched from its
source when it is found nowhere locally."""
import hashlib
import os
import zipfile

import pytest

from embedbench.data.beir import load_beir, resolve_root
from embedbench.data.files import data_file
from embedbench.errors import EmbedbenchError
from tests.helpers import FileServer, beir_folder

CORPUS = {f"d{i}": {"title": f"title {i}", "text": f"document {i} " + "words " * 200} for i in range(40)}
QUERIES = {"q1": "first question", "q2": "second question"}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 2}}


def beir_zip(tmp_path, name: str, extra: dict[str, str] | None = None) -> tuple:
    """The BEIR release's layout, ``<name>.zip`` holding ``<name>/corpus.jsonl ...``; and its md5."""
    folder = beir_folder(tmp_path / "build" / name, CORPUS, QUERIES, QRELS)
    served = tmp_path / "served"
    served.mkdir(exist_ok=True)
    archive = served / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, f"{name}/{path.relative_to(folder)}")
        for entry, text in (extra or {}).items():
            zf.writestr(entry, text)
    return served, hashlib.md5(archive.read_bytes()).hexdigest()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.delenv("EMBEDBENCH_DATA", raising=False)
    monkeypatch.setenv("EMBEDBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_good_archive_is_checked_unpacked_and_then_read_from_the_cache(tmp_path, cache):
    served, md5 = beir_zip(tmp_path, "tiny")
    with FileServer(served) as server:
        root = resolve_root("tiny", None, f"{server.url}/tiny.zip", md5)
        assert root == cache / "beir" / "tiny"
        assert load_beir("tiny", root, "test").qrels == QRELS
        assert resolve_root("tiny", None, f"{server.url}/tiny.zip", md5) == root
    assert len(server.requests) == 1  # the second run found the published folder
    assert sorted(p.name for p in (cache / "beir").iterdir()) == ["tiny"]  # no archive, no staging left


def test_wrong_checksum_discards_the_download(tmp_path, cache):
    served, md5 = beir_zip(tmp_path, "tiny")
    with FileServer(served) as server, pytest.raises(EmbedbenchError) as error:
        resolve_root("tiny", None, f"{server.url}/tiny.zip", "0" * 32)
    assert f"tiny.zip: md5 is {md5}, the published one is {'0' * 32}: the download was discarded" in str(error.value)
    assert "set data.root=<folder>" in str(error.value) and "\n" not in str(error.value)
    assert not (cache / "beir").exists() or not any((cache / "beir").iterdir())


def test_a_transfer_cut_mid_way_resumes_where_it_stopped(tmp_path, cache):
    served, md5 = beir_zip(tmp_path, "tiny")
    size = (served / "tiny.zip").stat().st_size
    with FileServer(served, cut_after=size // 2) as server:
        with pytest.raises(EmbedbenchError, match=rf"download failed .*; {size // 2} bytes kept in .*tiny\.zip\.part, "
                                                  "the next run continues from there"):
            resolve_root("tiny", None, f"{server.url}/tiny.zip", md5)
        assert not (cache / "beir" / "tiny").exists()  # nothing published from half an archive
        root = resolve_root("tiny", None, f"{server.url}/tiny.zip", md5)
    assert server.requests[1] == ("/tiny.zip", f"bytes={size // 2}-")  # only the missing half was asked for
    assert load_beir("tiny", root, "test").corpus == CORPUS


def test_an_entry_that_would_land_outside_the_cache_refuses_the_archive(tmp_path, cache):
    served, md5 = beir_zip(tmp_path, "tiny", {"../escape": "outside"})
    refused = r"tiny\.zip: entry '\.\./escape' would be written outside .*; the archive was refused"
    with FileServer(served) as server, pytest.raises(EmbedbenchError, match=refused):
        resolve_root("tiny", None, f"{server.url}/tiny.zip", md5)
    assert not list(tmp_path.rglob("escape"))
    assert not (cache / "beir" / "tiny").exists()
    assert [p.name for p in (cache / "beir").iterdir()] == ["tiny.zip"]  # verified, kept: no second download


def test_a_task_file_found_nowhere_is_fetched_from_its_source(tmp_path, cache, monkeypatch):
    from embedbench.config import Download

    served = tmp_path / "served"
    served.mkdir()
    (served / "test.csv").write_text("text,label\nhello,a\n")
    sha256 = hashlib.sha256((served / "test.csv").read_bytes()).hexdigest()
    monkeypatch.chdir(tmp_path)
    with FileServer(served) as server:
        path = data_file("mine/test.csv", "eval.tasks.mine.test", Download(f"{server.url}/test.csv", sha256))
        assert path == cache / "files" / "mine" / "test.csv" and path.read_text().startswith("text,label")
        with pytest.raises(EmbedbenchError, match=r"eval.tasks.mine.test=other/test.csv: not in .*other/test.csv or "
                                                  r"\$EMBEDBENCH_DATA \(not set\), and .*sha256 is"):
            data_file("other/test.csv", "eval.tasks.mine.test", Download(f"{server.url}/test.csv", "f" * 64))
    monkeypatch.setenv("EMBEDBENCH_DATA", str(tmp_path / "data"))
    os.makedirs(tmp_path / "data" / "mine")
    (tmp_path / "data" / "mine" / "test.csv").write_text("local")
    assert data_file("mine/test.csv", "k", Download("http://127.0.0.1:9/never", sha256)).read_text() == "local"
