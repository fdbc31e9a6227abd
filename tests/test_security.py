"""Tenants stay apart (docs/security.md): Ingest reads only <ingest root>/<dataset>/, an
error never tells whether a path outside exists, DeleteDataset takes the dataset's exports
with it, and a token without `read` learns no sizes and no customer existence.

(The bind address and TLS of `serve` are tested with the serve configuration.)
"""
from __future__ import annotations

import os
import shutil

import grpc
import pytest

from segments.bench.generate import generate
from segments.engine.api import Engine
from segments.server.app import build_server, stop
from tests.grpc_support import grpc_env  # noqa: F401  (fixture)

C = grpc.StatusCode
ALL = {"include": "all"}


def code_of(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e
    return None


@pytest.fixture(scope="module")
def tenants(grpc_env):
    """'other' exported by its own token, its files uploaded, and a symlink planted in shop's folder."""
    uploads = grpc_env.ingest_root
    other_upload = uploads / "other"
    if not other_upload.exists():
        shutil.copytree(grpc_env.folders["other"], other_upload)
    (uploads / "shop").mkdir(exist_ok=True)
    link = uploads / "shop" / "link-to-other"
    if not link.exists():
        os.symlink(other_upload, link)
    with grpc_env.client("all-token-B", auth=True) as c:
        c.export("other", ALL, ["email"], file_name="other-emails.parquet")
    return grpc_env


@pytest.mark.parametrize("folder", [
    "<exports>/other", "<uploads>/other", "../other", "link-to-other", "<data>/other", "<data>", "/", "/etc",
    "../../..", "<exports>/other/other-emails.parquet"])
def test_a_write_token_cannot_ingest_another_tenants_files(tenants, folder):
    env = tenants
    folder = (folder.replace("<exports>", str(env.export_dir)).replace("<uploads>", str(env.ingest_root))
              .replace("<data>", str(env.root)))
    with env.client("reader-token-A", auth=True) as reader, env.client("writer-token-A", auth=True) as writer:
        before = reader.count("shop", ALL).count
        err = code_of(lambda: writer.ingest("shop", folder))
        assert err is not None and err.code() == C.INVALID_ARGUMENT, err
        assert err.details() == ("folder: must be a folder inside this dataset's ingest folder "
                                 "(<ingest root>/shop/), given relative to it"), err.details()
        assert reader.count("shop", ALL).count == before


def test_errors_do_not_tell_whether_a_path_outside_exists(tenants):
    with tenants.client("writer-token-A", auth=True) as writer:
        texts = {code_of(lambda: writer.ingest("shop", p)).details()
                 for p in ("/etc", "/etc/passwd", "/no/such/folder", "/root", str(tenants.root), "../nope")}
    assert len(texts) == 1, texts


def test_inside_its_own_folder_a_tenant_is_told_what_is_wrong(tenants):
    with tenants.client("writer-token-A", auth=True) as writer:
        err = code_of(lambda: writer.ingest("shop", "missing"))
        assert err.code() == C.INVALID_ARGUMENT and "'missing' is not a folder" in err.details()
        empty = tenants.ingest_root / "shop" / "empty"
        empty.mkdir(exist_ok=True)
        err = code_of(lambda: writer.ingest("shop", "empty"))
        assert err.code() == C.INVALID_ARGUMENT and str(tenants.ingest_root) not in err.details(), err.details()


def test_a_server_without_an_ingest_root_takes_no_ingest(tmp_path):
    eng = Engine(tmp_path / "data")
    eng.create_dataset("t", "UTC")
    server, port = build_server(eng, 0)
    server.start()
    try:
        from segments.client.client import SegmentsClient
        with SegmentsClient(f"127.0.0.1:{port}") as c:
            err = code_of(lambda: c.ingest("t", str(tmp_path)))
        assert err.code() == C.FAILED_PRECONDITION and err.reason == "INGEST_DISABLED"
    finally:
        stop(server, 0)
        eng.close()


@pytest.mark.parametrize("root", ["<data>", "<data>/t", "<data>/_exports", "<tmp>", "<exports>", "<exports>/x"])
def test_an_ingest_root_overlapping_the_data_or_exports_is_refused(tmp_path, root):
    eng = Engine(tmp_path / "data")
    exports = tmp_path / "exports"
    root = root.replace("<data>", str(tmp_path / "data")).replace("<exports>", str(exports)).replace(
        "<tmp>", str(tmp_path))
    with pytest.raises(ValueError, match="overlaps"):
        build_server(eng, 0, ingest_root=root, export_dir=exports)
    eng.close()


def test_delete_dataset_removes_its_exports_and_a_new_one_inherits_none(tenants):
    env = tenants
    up = env.ingest_root / "sec-gone"
    shutil.copytree(env.folders["other"], up / "in", dirs_exist_ok=True)
    with env.client("root-token", auth=True) as root:
        root.create_dataset("sec-gone", "UTC")
        root.ingest("sec-gone", "in")
        root.export("sec-gone", ALL, ["email"], format="csv", file_name="emails.csv")
        assert (env.export_dir / "sec-gone" / "emails.csv").exists()
        root.delete_dataset("sec-gone")
        assert not (env.export_dir / "sec-gone").exists()
        # files left there by other means (an older server, a copy) do not pass to a new dataset
        (env.export_dir / "sec-gone").mkdir()
        (env.export_dir / "sec-gone" / "old.csv").write_text("customer_id,email\n1,a@b.c\n")
        root.create_dataset("sec-gone", "UTC")
        assert not (env.export_dir / "sec-gone").exists()
        root.delete_dataset("sec-gone")


def test_engine_delete_dataset_removes_the_default_export_folder(tmp_path):
    eng = Engine(tmp_path / "data")
    generate(tmp_path / "in", customers=50, seed=3)
    eng.create_dataset("gone", "UTC")
    eng.ingest("gone", tmp_path / "in")
    (tmp_path / "data" / "_exports" / "gone").mkdir(parents=True)
    (tmp_path / "data" / "_exports" / "gone" / "x.csv").write_text("customer_id\n1\n")
    eng.delete_dataset("gone")
    assert not (tmp_path / "data" / "_exports" / "gone").exists()
    eng.close()


def test_a_write_only_token_learns_no_group_size(tenants):
    with tenants.client("writer-token-A", auth=True) as writer, tenants.client("root-token", auth=True) as root:
        g = writer.create_group("shop", "sec-wo-group", ALL)
        try:
            assert g["count"] == 0
            assert root.get_group("shop", "sec-wo-group")["count"] > 0   # the group itself is whole
        finally:
            writer.delete_group("shop", "sec-wo-group")
        g = root.create_group("shop", "sec-rw-group", ALL)
        assert g["count"] > 0
        root.delete_group("shop", "sec-rw-group")


def test_a_write_only_token_learns_no_customer_existence_from_deletes(tenants):
    with tenants.client("writer-token-A", auth=True) as writer, tenants.client("root-token", auth=True) as root:
        ack = writer.delete_customers("shop", [424242424242, 424242424243])
        assert ack["not_found"] == [] and ack["rows"]["deleted"] == 0
        again = writer.apply_changes("shop", delete=[424242424242], batch_id="sec-wo-retry")
        assert writer.apply_changes("shop", delete=[424242424242], batch_id="sec-wo-retry")["not_found"] == []
        assert again["not_found"] == []
        assert root.delete_customers("shop", [424242424242])["not_found"] == [424242424242]
