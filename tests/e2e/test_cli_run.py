"""End to end: the real CLI in a subprocess, the emulator, and moto's S3 server."""

from __future__ import annotations

import gzip
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchrek.testing import corpus
from tests.conftest import S3Bed
from tests.e2e.clirun import batchrek, pairs, read_records, run_args

pytestmark = pytest.mark.slow


def _images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img-{i}.jpg"
        path.write_bytes(corpus.photo(200 + 10 * i, 160))
        paths.append(path)
    return paths


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _total_requests(emu: Any) -> int:
    return int(emu.stats()["total_requests"])


def test_jsonl_local_images_one_record_per_pair(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    imgs = _images(tmp_path / "imgs", 5)
    manifest = _jsonl(
        tmp_path / "m.jsonl", [{"id": p.stem, "image": str(p), "camera": "x"} for p in imgs]
    )
    out = tmp_path / "out.jsonl"
    res = batchrek(
        *run_args(manifest, out, emu.endpoint_url, s3.endpoint_url),
        "--operation",
        "detect_labels",
        "--operation",
        "detect_text",
        output=out,
    )
    assert res.code == 0, res.stderr
    assert sorted(pairs(res.records)) == sorted(
        (p.stem, op) for p in imgs for op in ("detect_labels", "detect_text")
    )
    assert all(r["status"] == "ok" and r["input"] == "bytes" for r in res.records)
    assert all(r["meta"] == {"camera": "x"} for r in res.records)


def test_local_bytes_are_sent_byte_for_byte(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    import hashlib

    (img,) = _images(tmp_path / "imgs", 1)
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"{img}\n")
    out = tmp_path / "out.jsonl"
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    assert res.code == 0, res.stderr
    analysed = emu.analyses("DetectLabels")
    assert list(analysed) == [hashlib.sha256(img.read_bytes()).hexdigest()]


def test_routes_by_where_the_image_lives(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    prefix = f"cli/{uuid.uuid4()}"
    body = corpus.photo(320, 240)
    s3.put(s3.bucket_use1, f"{prefix}/a.jpg", body)
    s3.put(s3.bucket_euw1, f"{prefix}/b.jpg", body)
    (local,) = _images(tmp_path / "imgs", 1)
    manifest = tmp_path / "m.txt"
    manifest.write_text(
        f"# mixed sources\ns3://{s3.bucket_use1}/{prefix}/a.jpg\n\n"
        f"s3://{s3.bucket_euw1}/{prefix}/b.jpg\n{local}\n"
    )
    out = tmp_path / "out.jsonl"
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    assert res.code == 0, res.stderr
    routes = {r["id"]: r["input"] for r in res.records}
    assert routes == {
        f"s3://{s3.bucket_use1}/{prefix}/a.jpg": "s3object",
        f"s3://{s3.bucket_euw1}/{prefix}/b.jpg": "bytes",
        str(local): "bytes",
    }


def test_missing_object_is_an_error_record_and_run_goes_on(
    tmp_path: Path, emu: Any, s3: S3Bed
) -> None:
    prefix = f"cli/{uuid.uuid4()}"
    s3.put(s3.bucket_use1, f"{prefix}/ok.jpg", corpus.photo(200, 200))
    manifest = tmp_path / "m.txt"
    manifest.write_text(
        f"s3://{s3.bucket_use1}/{prefix}/missing.jpg\ns3://{s3.bucket_use1}/{prefix}/ok.jpg\n"
        f"s3://{s3.bucket_euw1}/{prefix}/missing-too.jpg\n"
    )
    out = tmp_path / "out.jsonl"
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    assert res.code == 1
    codes = {r["id"].rsplit("/", 1)[1]: (r["error"] or {}).get("code") for r in res.records}
    assert codes == {
        "missing.jpg": "InvalidS3ObjectException",
        "ok.jpg": None,
        "missing-too.jpg": "NoSuchKey",
    }


def test_csv_with_header_and_headerless_batch_ops(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    prefix = f"cli/{uuid.uuid4()}"
    s3.put(s3.bucket_use1, f"{prefix}/x y.jpg", corpus.photo(200, 200))
    imgs = _images(tmp_path / "imgs", 2)
    headed = tmp_path / "headed.csv"
    headed.write_text("id,image,label\n" + "".join(f"{p.stem},{p},L{p.stem}\n" for p in imgs))
    bare = tmp_path / "bare.csv"
    bare.write_text(f"{s3.bucket_use1},{prefix}/x+y.jpg\n")
    for manifest, expected in ((headed, 2), (bare, 1)):
        out = tmp_path / f"{manifest.stem}.jsonl"
        res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
        assert res.code == 0, res.stderr
        assert len(res.records) == expected
        assert all(r["status"] == "ok" for r in res.records)


def test_s3_inventory_manifest(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    prefix = f"cli/{uuid.uuid4()}"
    keys = [f"{prefix}/photos/p{i}.jpg" for i in range(3)]
    for key in keys:
        s3.put(s3.bucket_use1, key, corpus.photo(200, 200))
    csv_rows = "".join(f'"{s3.bucket_use1}","{k}","1234"\n' for k in keys)
    s3.put(s3.bucket_use1, f"{prefix}/inv/data/a.csv.gz", gzip.compress(csv_rows.encode()))
    manifest = {
        "sourceBucket": s3.bucket_use1,
        "destinationBucket": f"arn:aws:s3:::{s3.bucket_use1}",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size",
        "files": [{"key": f"{prefix}/inv/data/a.csv.gz", "size": 1, "MD5checksum": "x"}],
    }
    s3.put(s3.bucket_use1, f"{prefix}/inv/manifest.json", json.dumps(manifest).encode())
    out = tmp_path / "out.jsonl"
    uri = f"s3://{s3.bucket_use1}/{prefix}/inv/manifest.json"
    res = batchrek(*run_args(uri, out, emu.endpoint_url, s3.endpoint_url), output=out)
    assert res.code == 0, res.stderr
    assert sorted(r["id"] for r in res.records) == sorted(
        f"s3://{s3.bucket_use1}/{k}" for k in keys
    )
    assert {r["input"] for r in res.records} == {"s3object"}


def test_s3_prefix_and_local_folder(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    prefix = f"cli/{uuid.uuid4()}"
    for i in range(3):
        s3.put(s3.bucket_use1, f"{prefix}/p{i}.png", corpus.photo(200, 200, fmt="PNG"))
    s3.put(s3.bucket_use1, f"{prefix}/notes.txt", b"not an image")
    folder = tmp_path / "folder"
    _images(folder / "sub", 2)
    for manifest, expected in ((f"s3://{s3.bucket_use1}/{prefix}/", 3), (str(folder), 2)):
        out = tmp_path / f"out-{expected}.jsonl"
        res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
        assert res.code == 0, res.stderr
        assert len(res.records) == expected


def test_resume_sends_nothing_already_done(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    imgs = _images(tmp_path / "imgs", 4)
    manifest = _jsonl(tmp_path / "m.jsonl", [{"image": str(p)} for p in imgs])
    out = tmp_path / "out.jsonl"
    first = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    assert first.code == 0, first.stderr
    before = _total_requests(emu)
    second = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    assert second.code == 0, second.stderr
    assert _total_requests(emu) == before
    assert len(second.records) == 4


def test_torn_last_line_is_repaired(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    imgs = _images(tmp_path / "imgs", 3)
    manifest = _jsonl(tmp_path / "m.jsonl", [{"image": str(p)} for p in imgs])
    out = tmp_path / "out.jsonl"
    batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:2]) + lines[2][: len(lines[2]) // 2])  # killed mid-write
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    assert res.code == 0, res.stderr
    assert sorted(r["id"] for r in res.records) == sorted(str(p) for p in imgs)


def test_bad_manifest_lines_become_error_records(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    (img,) = _images(tmp_path / "imgs", 1)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        f'{{"image": "{img}"}}\n{{not json\n{{"other": 1}}\n{{"image": "ftp://x/y.jpg"}}\n'
    )
    out = tmp_path / "out.jsonl"
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    assert res.code == 1
    problems = [r for r in res.records if r["error"] and r["error"]["code"] == "ManifestError"]
    assert [p["error"]["message"].split(":")[0] for p in problems] == ["line 2", "line 3", "line 4"]
    assert sum(r["status"] == "ok" for r in res.records) == 1


def test_corpus_of_unfixable_images_exits_1_with_one_record_each(
    tmp_path: Path, emu: Any, s3: S3Bed
) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    files = {
        "truncated.jpg": corpus.truncated(corpus.photo(400, 300)),
        "empty.jpg": b"",
        "text.jpg": corpus.text_named_jpg(),
        "tiny.png": corpus.photo(40, 40, fmt="PNG"),
        "bomb.png": corpus.bomb_png(),
        "good.jpg": corpus.photo(300, 200),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    manifest = _jsonl(tmp_path / "m.jsonl", [{"id": n, "image": str(folder / n)} for n in files])
    out = tmp_path / "out.jsonl"
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    assert res.code == 1
    codes = {r["id"]: (r["error"] or {}).get("code") for r in res.records}
    assert codes == {
        "truncated.jpg": "CorruptImage",
        "empty.jpg": "EmptyImage",
        "text.jpg": "UnsupportedFormat",
        "tiny.png": "ImageTooSmall",
        "bomb.png": "DecompressionBomb",
        "good.jpg": None,
    }
    assert all(r["error"] is None or r["error"]["retryable"] is False for r in res.records)


def test_missing_manifest_exits_2(tmp_path: Path) -> None:
    res = batchrek("run", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o.jsonl"))
    assert res.code == 2
    assert "nope.jsonl" in res.stderr


def test_missing_required_parameter_exits_2_before_any_call(tmp_path: Path, emu: Any) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_text("a.jpg\n")
    res = batchrek(
        "run",
        str(manifest),
        "-o",
        str(tmp_path / "o.jsonl"),
        "--operation",
        "index_faces",
        "--endpoint-url",
        emu.endpoint_url,
    )
    assert res.code == 2
    assert "CollectionId" in res.stderr
    assert _total_requests(emu) == 0


def test_unknown_config_setting_exits_2_with_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("concurency = 4\n")
    res = batchrek("run", "m.txt", "-o", "o.jsonl", "--config", str(config))
    assert res.code == 2
    assert "did you mean 'concurrency'" in res.stderr


def test_dry_run_routes_and_prices_without_calling(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    prefix = f"cli/{uuid.uuid4()}"
    s3.put(s3.bucket_use1, f"{prefix}/a.jpg", corpus.photo(200, 200))
    imgs = _images(tmp_path / "imgs", 2)
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"s3://{s3.bucket_use1}/{prefix}/a.jpg\n" + "".join(f"{p}\n" for p in imgs))
    res = batchrek(
        *run_args(manifest, tmp_path / "o.jsonl", emu.endpoint_url, s3.endpoint_url), "--dry-run"
    )
    assert res.code == 0, res.stderr
    assert "s3object" in res.stdout
    assert "billable calls: 3" in res.stdout
    assert _total_requests(emu) == 0


def test_metrics_out_has_the_contract_keys(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    imgs = _images(tmp_path / "imgs", 3)
    manifest = _jsonl(tmp_path / "m.jsonl", [{"image": str(p)} for p in imgs])
    out, metrics = tmp_path / "out.jsonl", tmp_path / "metrics.json"
    res = batchrek(
        *run_args(manifest, out, emu.endpoint_url, s3.endpoint_url),
        "--metrics-out",
        str(metrics),
        output=out,
    )
    assert res.code == 0, res.stderr
    data = json.loads(metrics.read_text())
    contract = {
        "items",
        "requests",
        "ok",
        "failed",
        "skipped",
        "retries",
        "throttled",
        "elapsed_s",
        "throughput_per_s",
        "latency_ms",
        "by_operation",
        "input",
    }
    assert contract <= set(data)
    assert set(data["latency_ms"]) >= {"p50", "p90", "p99", "max"}
    assert (data["ok"], data["input"]["bytes"]) == (3, 3)


def test_same_image_listed_twice_is_analysed_once(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    (img,) = _images(tmp_path / "imgs", 1)
    manifest = _jsonl(
        tmp_path / "m.jsonl",
        [{"id": "first", "image": str(img)}, {"id": "again", "image": str(img)}],
    )
    out = tmp_path / "out.jsonl"
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    assert res.code == 0, res.stderr
    assert sorted(r["id"] for r in res.records) == ["again", "first"]
    assert Counter(emu.analyses("DetectLabels").values()) == Counter({1: 1})


def test_records_stream_as_complete_lines(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    imgs = _images(tmp_path / "imgs", 6)
    manifest = _jsonl(tmp_path / "m.jsonl", [{"image": str(p)} for p in imgs])
    out = tmp_path / "out.jsonl"
    batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    raw = out.read_bytes()
    assert raw.endswith(b"\n")
    assert len(read_records(out)) == 6


@pytest.fixture
def http_images(tmp_path: Path) -> Any:
    """A plain HTTP server on 127.0.0.1 serving a folder (a stand-in for https)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    folder = tmp_path / "web"
    folder.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_urls_need_allow_http(tmp_path: Path, emu: Any, s3: S3Bed, http_images: Any) -> None:
    folder, base = http_images
    (folder / "a.jpg").write_bytes(corpus.photo(300, 200))
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"{base}/a.jpg\n{base}/missing.jpg\n")
    out = tmp_path / "out.jsonl"
    refused = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    assert {r["error"]["code"] for r in refused.records} == {"InsecureUrl"}
    allowed = batchrek(
        *run_args(manifest, tmp_path / "o2.jsonl", emu.endpoint_url, s3.endpoint_url),
        "--allow-http",
        output=tmp_path / "o2.jsonl",
        env={"BATCHREK_ALLOW_LOOPBACK_ADDRESSES": "true"},  # the server is on 127.0.0.1
    )
    codes = {r["id"].rsplit("/", 1)[1]: (r["error"] or {}).get("code") for r in allowed.records}
    assert codes == {"a.jpg": None, "missing.jpg": "SourceNotFound"}


def test_report_draws_a_run(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    imgs = _images(tmp_path / "imgs", 2)
    manifest = _jsonl(tmp_path / "m.jsonl", [{"image": str(p)} for p in imgs])
    out, metrics = tmp_path / "out.jsonl", tmp_path / "metrics.json"
    batchrek(
        *run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), "--metrics-out", str(metrics)
    )
    report = tmp_path / "report.html"
    res = batchrek("report", str(metrics), "-o", str(report))
    assert res.code == 0, res.stderr
    assert report.read_text().count("<svg") >= 4


def test_endpoints_from_the_standard_aws_environment(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    """AWS_ENDPOINT_URL_REKOGNITION / AWS_ENDPOINT_URL_S3 work as botocore defines them."""
    prefix = f"cli/{uuid.uuid4()}"
    s3.put(s3.bucket_use1, f"{prefix}/a.jpg", corpus.photo(200, 200))
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"s3://{s3.bucket_use1}/{prefix}/a.jpg\n")
    out = tmp_path / "out.jsonl"
    res = batchrek(
        "run",
        str(manifest),
        "-o",
        str(out),
        "--region",
        "us-east-1",
        "--no-progress",
        env={
            "AWS_ENDPOINT_URL_REKOGNITION": emu.endpoint_url,
            "AWS_ENDPOINT_URL_S3": s3.endpoint_url,
        },
        output=out,
    )
    assert res.code == 0, res.stderr
    assert [r["input"] for r in res.records] == ["s3object"]
