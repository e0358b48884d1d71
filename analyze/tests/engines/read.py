"""Reads one recording with five engines, each with no options, and prints what each saw as
JSON: rows, first and last event time in microseconds since the epoch (UTC), byte and packet
totals, rows per kind, distinct cgroups, and (pyarrow) the Arrow schema's gespann.* metadata.

Usage: read.py RECORDING
"""
import json
import sys
from decimal import Decimal

path = sys.argv[1]
out = {}


def facts(rows, first_us, last_us, sent, received, packets, conn_ids, kinds, cgroups):
    return {
        "rows": int(rows),
        "first_us": int(first_us),
        "last_us": int(last_us),
        "bytes_sent": int(sent),
        "bytes_received": int(received),
        "packets_sent": int(packets),
        "conn_id_sum": int(conn_ids),
        "kinds": {str(k): int(n) for k, n in kinds},
        "cgroups": int(cgroups),
    }


TOTALS = """count(*), {us}(min(ts)), {us}(max(ts)), sum(bytes_sent), sum(bytes_received),
            sum(packets_sent), sum(conn_id), count(DISTINCT cgroup)"""
KINDS = "SELECT kind, count(*) FROM {t} GROUP BY kind"


def pyarrow_reads():
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    ts = pc.cast(t["ts"], "int64")
    kinds = t.group_by("kind").aggregate([("kind", "count")]).to_pylist()
    f = facts(
        t.num_rows,
        pc.min(ts).as_py(),
        pc.max(ts).as_py(),
        pc.sum(t["bytes_sent"]).as_py(),
        pc.sum(t["bytes_received"]).as_py(),
        pc.sum(t["packets_sent"]).as_py(),
        pc.sum(t["conn_id"]).as_py(),
        [(k["kind"], k["kind_count"]) for k in kinds],
        len(pc.unique(t["cgroup"])),
    )
    f["ts_unit"] = t.schema.field("ts").type.unit
    meta = pq.read_schema(path).metadata or {}
    f["metadata"] = {k.decode(): v.decode() for k, v in meta.items() if k.startswith(b"gespann.")}
    return f


def duckdb_reads():
    import duckdb

    c = duckdb.connect()
    t = f"read_parquet('{path}')"
    row = c.execute(f"SELECT {TOTALS.format(us='epoch_us')} FROM {t}").fetchone()
    return facts(*row[:7], c.execute(KINDS.format(t=t)).fetchall(), row[7])


def polars_reads():
    import polars as pl

    df = pl.read_parquet(path)
    us = df["ts"].dt.epoch("us")
    kinds = df.group_by("kind").len().rows()
    return facts(
        df.height,
        us.min(),
        us.max(),
        df["bytes_sent"].sum(),
        df["bytes_received"].sum(),
        df["packets_sent"].sum(),
        df["conn_id"].sum(),
        kinds,
        df["cgroup"].n_unique(),
    )


def clickhouse_reads():
    import chdb

    t = f"file('{path}', Parquet)"
    q = f"SELECT {TOTALS.format(us='toUnixTimestamp64Micro')} FROM {t} FORMAT JSONCompact"
    row = json.loads(str(chdb.query(q)))["data"][0]
    kinds = json.loads(str(chdb.query(KINDS.format(t=t) + " FORMAT JSONCompact")))["data"]
    return facts(*row[:7], kinds, row[7])


def spark_reads():
    from pyspark.sql import SparkSession

    s = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    s.sparkContext.setLogLevel("ERROR")
    s.read.parquet(path).createOrReplaceTempView("r")
    row = s.sql(f"SELECT {TOTALS.format(us='unix_micros')} FROM r").collect()[0]
    kinds = [tuple(r) for r in s.sql(KINDS.format(t="r")).collect()]
    f = facts(*[Decimal(v) if v is not None else 0 for v in row[:7]], kinds, row[7])
    s.stop()
    return f


for name, read in [
    ("pyarrow", pyarrow_reads),
    ("duckdb", duckdb_reads),
    ("polars", polars_reads),
    ("clickhouse", clickhouse_reads),
    ("spark", spark_reads),
]:
    try:
        out[name] = read()
    except Exception as e:  # noqa: BLE001 - the test shows which engine failed and why
        out[name] = {"error": f"{type(e).__name__}: {str(e)[:2000]}"}
print(json.dumps(out))
