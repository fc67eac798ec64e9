"""vpcgate's flow-log files read by clients nobody here wrote.

`cargo run -p flowlog --example write_sample` writes the same deterministic records
through the S3-directory sink (gzip text and Parquet) and the CloudWatch-directory
sink, for several formats, and prints what it wrote. These tests read the files back
with the PyPI package `flowlogs-reader` (its record parser, its S3 reader over a
moto-mocked S3 holding our files under their own keys, and its CloudWatch Logs reader
over a moto-mocked log group fed with our stream files), with DuckDB and with pyarrow,
and check that every reader sees exactly the records and totals that were written.

Run from the repository root:
    python3 -m venv .venv && .venv/bin/pip install -r tests/clients/requirements.txt
    .venv/bin/pytest tests/clients -q
"""

import csv
import gzip
import json
import os
import re
import subprocess
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

import boto3
import duckdb
import pyarrow.parquet as pq
import pytest
from flowlogs_reader import FlowLogsReader, FlowRecord, S3FlowLogsReader
from moto import mock_aws

REPO = Path(__file__).resolve().parents[2]
WINDOW = 300

NAME_RE = re.compile(
    r"^(?P<account>\d{12})_vpcflowlogs_(?P<region>[a-z0-9-]+)_(?P<fl>fl-[0-9a-f]+)_"
    r"(?P<ts>\d{8}T\d{4}Z)_(?P<hash>[0-9a-f]{8})\.(?P<ext>log\.gz|log\.parquet)$"
)


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("flowlogs")
    proc = subprocess.run(
        ["cargo", "run", "-q", "-p", "flowlog", "--example", "write_sample", "--", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture()
def aws_env(monkeypatch):
    # moto needs credentials to sign with; nothing leaves the process.
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def flow_logs(sample, *, hive=None):
    return [fl for fl in sample["flow_logs"] if hive is None or fl["hive"] == hive]


def files(sample, prefix, ext):
    root = Path(sample["s3_root"]) / prefix
    found = sorted(p for p in root.rglob("*") if p.is_file())
    assert found, f"no files under {root}"
    assert all(p.name.endswith(ext) for p in found), [p.name for p in found]
    return found


def utc(ts):
    return datetime.fromtimestamp(ts, timezone.utc).replace(tzinfo=None)


def totals(records):
    """The summary's totals, computed from flowlogs_reader.FlowRecord objects."""
    by_action = defaultdict(lambda: {"records": 0, "packets": 0, "bytes": 0})
    by_status = Counter()
    n = 0
    for r in records:
        n += 1
        by_status[r.log_status] += 1
        if r.log_status == "OK":
            a = by_action[r.action]
            a["records"] += 1
            a["packets"] += r.packets
            a["bytes"] += r.bytes
    return {"records": n, "by_log_status": dict(by_status), "by_action": dict(by_action)}


def expected(sample):
    t = sample["totals"]
    return {k: t[k] for k in ("records", "by_log_status", "by_action")}


# --- layout -------------------------------------------------------------------


@pytest.mark.parametrize("kind,ext", [("text", ".log.gz"), ("parquet", ".log.parquet")])
def test_s3_layout_and_file_names(sample, kind, ext):
    for fl in flow_logs(sample):
        prefix = fl[f"{kind}_prefix"]
        for path in files(sample, prefix, ext):
            m = NAME_RE.match(path.name)
            assert m, path.name
            assert m["fl"] == fl["flow_log_id"]
            assert sample["accounts"][m["account"]] == m["region"]
            ts = datetime.strptime(m["ts"], "%Y%m%dT%H%MZ")
            assert ts.minute % 5 == 0
            rel = path.relative_to(Path(sample["s3_root"]) / prefix / "AWSLogs").parts[:-1]
            if fl["hive"]:
                want = [
                    f"aws-account-id={m['account']}",
                    "aws-service=vpcflowlogs",
                    f"aws-region={m['region']}",
                    f"year={ts:%Y}",
                    f"month={ts:%m}",
                    f"day={ts:%d}",
                ]
                if fl["hourly"]:
                    want.append(f"hour={ts:%H}")
            else:
                want = [m["account"], "vpcflowlogs", m["region"], f"{ts:%Y}", f"{ts:%m}", f"{ts:%d}"]
                if fl["hourly"]:
                    want.append(f"{ts:%H}")
            assert list(rel) == want, path


def test_text_files_hold_their_window_and_tokens_match_the_header(sample):
    for fl in flow_logs(sample):
        fields = fl["fields"]
        end_col = fields.index("end") if "end" in fields else None
        for path in files(sample, fl["text_prefix"], ".log.gz"):
            ts = NAME_RE.match(path.name)["ts"]
            window = int(datetime.strptime(ts, "%Y%m%dT%H%MZ").replace(tzinfo=timezone.utc).timestamp())
            with gzip.open(path, "rt") as f:
                assert f.readline().split() == fields
                for line in f:
                    tokens = line.rstrip("\n").split(" ")
                    assert len(tokens) == len(fields), line
                    if end_col is not None:
                        assert window <= int(tokens[end_col]) < window + WINDOW


# --- flowlogs-reader ------------------------------------------------------------


def test_flowlogs_reader_parses_every_text_record(sample):
    """Every gzip line through flowlogs-reader's FlowRecord, by the header's names."""
    for fl in flow_logs(sample):
        records = []
        for path in files(sample, fl["text_prefix"], ".log.gz"):
            with gzip.open(path, "rt") as f:
                # What S3FlowLogsReader does with a text object.
                reader = csv.DictReader(f, delimiter=" ")
                reader.fieldnames = [n.replace("-", "_") for n in reader.fieldnames]
                assert reader.fieldnames == fl["columns"]
                for row in reader:
                    rec = FlowRecord(row)
                    assert rec.version == fl["version"]
                    records.append(rec)
        assert totals(records) == expected(sample), fl["name"]
        if "type" in fl["fields"]:
            assert sum(r.type == "IPv6" for r in records) == sample["totals"]["ipv6_records"]


def upload(client, sample, prefix):
    bucket, _, _ = prefix.partition("/")
    client.create_bucket(Bucket=bucket)
    root = Path(sample["s3_root"]) / bucket
    for path in (Path(sample["s3_root"]) / prefix).rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, path.relative_to(root).as_posix())


@pytest.mark.parametrize("kind", ["text", "parquet"])
def test_flowlogs_reader_s3_reader_over_our_keys(sample, aws_env, kind):
    """S3FlowLogsReader lists accounts, regions and days and picks files by the time
    in their names, so this checks our key layout and names as much as the contents.
    (It knows only the plain layout, not the Hive-compatible one.)"""
    start = utc(sample["first_start"]).replace(minute=0, second=0)
    end = utc(sample["last_end"] + 3600)
    for fl in flow_logs(sample, hive=False):
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            upload(client, sample, fl[f"{kind}_prefix"])
            reader = S3FlowLogsReader(
                fl[f"{kind}_prefix"],
                start_time=start,
                end_time=end,
                boto_client=client,
                raise_on_error=True,
            )
            records = list(reader)
        assert reader.skipped_records == 0
        assert totals(records) == expected(sample), (kind, fl["name"])


def stream_files(sample, fl):
    group = Path(sample["cloudwatch_root"]) / fl["cloudwatch_group"]
    found = sorted(group.iterdir())
    assert [p.name for p in found] == sorted(f"{eni}-all" for eni in eni_ids(sample, fl))
    return found


def eni_ids(sample, fl):
    ids = set()
    for path in files(sample, fl["text_prefix"], ".log.gz"):
        with gzip.open(path, "rt") as f:
            for row in csv.DictReader(f, delimiter=" "):
                ids.add(row["interface-id"])
    return ids


def test_flowlogs_reader_cloudwatch_reader_over_our_streams(sample, aws_env):
    """Our stream files fed to a (moto) CloudWatch Logs group, one stream per file,
    event time = the record's start as AWS does, read back with FlowLogsReader.

    CloudWatch refuses events older than 14 days, so event times are the records'
    start shifted to end just now; the records themselves are not touched."""
    shift = int(datetime.now(timezone.utc).timestamp()) - sample["last_end"] - 120
    start = utc(sample["first_start"] + shift - 60)
    end = utc(sample["last_end"] + shift + 60)
    for fl in flow_logs(sample):
        group = f"/vpcgate/{fl['name']}"
        start_col = fl["fields"].index("start") if "start" in fl["fields"] else None
        with mock_aws():
            logs = boto3.client("logs", region_name="us-east-1")
            logs.create_log_group(logGroupName=group)
            for path in stream_files(sample, fl):
                logs.create_log_stream(logGroupName=group, logStreamName=path.name)
                events = []
                for line in path.read_text().splitlines():
                    assert len(line.split(" ")) == len(fl["fields"])
                    t = int(line.split(" ")[start_col]) if start_col is not None else sample["first_start"]
                    events.append({"timestamp": (t + shift) * 1000, "message": line})
                events.sort(key=lambda e: e["timestamp"])
                for i in range(0, len(events), 5000):
                    resp = logs.put_log_events(
                        logGroupName=group, logStreamName=path.name, logEvents=events[i : i + 5000]
                    )
                    assert "rejectedLogEventsInfo" not in resp, resp
            reader = FlowLogsReader(
                group,
                fields=fl["fields"],
                start_time=start,
                end_time=end,
                boto_client=logs,
                raise_on_error=True,
            )
            records = list(reader)
        assert reader.skipped_records == 0
        assert totals(records) == expected(sample), fl["name"]


# --- DuckDB ---------------------------------------------------------------------


def duck_totals(con, relation, action, status, packets="packets", bytes_="bytes"):
    rows = con.sql(
        f"select {action}, {status}, count(*), sum(cast({packets} as bigint)), "
        f"sum(cast({bytes_} as bigint)) from {relation} group by all"
    ).fetchall()
    by_action = {}
    by_status = Counter()
    n = 0
    for a, s, count, p, b in rows:
        n += count
        by_status[s] += count
        if s == "OK":
            by_action[a] = {"records": count, "packets": p, "bytes": b}
    return {"records": n, "by_log_status": dict(by_status), "by_action": by_action}


def test_duckdb_reads_the_gzip_text_files(sample):
    con = duckdb.connect()
    for fl in flow_logs(sample):
        if not {"action", "log-status", "packets", "bytes"} <= set(fl["fields"]):
            continue
        glob = Path(sample["s3_root"]) / fl["text_prefix"] / "**" / "*.log.gz"
        rel = (
            f"read_csv('{glob}', delim=' ', header=true, nullstr='-', all_varchar=true, "
            f"hive_partitioning=false)"
        )
        cols = [d[0] for d in con.sql(f"select * from {rel} limit 0").description]
        assert cols == fl["fields"]
        got = duck_totals(con, rel, "action", '"log-status"')
        assert got == expected(sample), fl["name"]


def test_duckdb_reads_the_parquet_files(sample):
    con = duckdb.connect()
    types = {}
    for fl in flow_logs(sample):
        glob = Path(sample["s3_root"]) / fl["parquet_prefix"] / "**" / "*.log.parquet"
        rel = f"read_parquet('{glob}', hive_partitioning=false)"
        schema = con.sql(f"describe select * from {rel}").fetchall()
        assert [r[0] for r in schema] == fl["columns"]
        types.update({r[0]: r[1] for r in schema})
        assert duck_totals(con, rel, "action", "log_status") == expected(sample), fl["name"]
    # Spec 4.1's types.
    for col in ("version", "srcport", "dstport", "protocol", "tcp_flags", "traffic_path"):
        assert types[col] == "INTEGER", col
    for col in ("packets", "bytes", "start", "end"):
        assert types[col] == "BIGINT", col
    for col in ("account_id", "srcaddr", "action", "log_status", "type", "flow_direction", "az_id"):
        assert types[col] == "VARCHAR", col


def test_duckdb_hive_partitions(sample):
    con = duckdb.connect()
    for fl in flow_logs(sample, hive=True):
        glob = Path(sample["s3_root"]) / fl["parquet_prefix"] / "**" / "*.log.parquet"
        rows = con.sql(
            f"""select "aws-account-id", "aws-region", count(*),
                       bool_and(account_id = "aws-account-id"), bool_and(region = "aws-region"),
                       bool_and(make_timestamp(cast(year as bigint), cast(month as bigint),
                                cast(day as bigint), cast(hour as bigint), 0, 0)
                                = date_trunc('hour', to_timestamp("end")::timestamp))
                from read_parquet('{glob}', hive_partitioning=true, hive_types_autocast=false)
                where log_status = 'OK'
                group by all order by 1"""
        ).fetchall()
        assert {r[0]: r[1] for r in rows} == sample["accounts"]
        assert all(r[3] and r[4] and r[5] for r in rows), rows


# --- pyarrow --------------------------------------------------------------------


def test_pyarrow_sees_gzip_pages_without_dictionaries(sample):
    for fl in flow_logs(sample):
        for path in files(sample, fl["parquet_prefix"], ".log.parquet"):
            meta = pq.ParquetFile(path).metadata
            assert [meta.schema.column(i).name for i in range(meta.num_columns)] == fl["columns"]
            for rg in range(meta.num_row_groups):
                for c in range(meta.num_columns):
                    col = meta.row_group(rg).column(c)
                    assert col.compression == "GZIP"
                    assert not col.has_dictionary_page
                    assert not {"PLAIN_DICTIONARY", "RLE_DICTIONARY"} & set(col.encodings)
            table = pq.read_table(path)
            assert table.num_rows == meta.num_rows > 0


def test_every_sink_delivered_everything(sample):
    for fl in flow_logs(sample):
        for kind, st in fl["stats"].items():
            assert st["records"] == sample["totals"]["records"], (fl["name"], kind)
            assert st["errors"] == 0 and st["dropped"] == 0, (fl["name"], kind)
    # No hidden temporaries left behind once the sinks are closed.
    leftovers = [p for p in Path(sample["out_dir"]).rglob(".*")]
    assert leftovers == []
