"""Benchmark the record pipeline, the xlsx sink and the compiler.

Usage::

    python benchmarks/pipeline.py [--sizes 10000,100000,1000000] [--xlsx-sizes 10000,100000]
                                  [--output docs/benchmarks.md]

Every figure is measured beside a baseline in the same run, on the same records:

- pipeline: syncplan's compiled mappings and converters against a naive pipeline
  that renders one Jinja2 template per record into JSON and validates it with a
  pydantic model;
- xlsx sink: the pipeline plus the sheet engine and the xlsx backend, against the
  naive pipeline plus ``openpyxl`` ``append`` of every row;
- compile: ``compile_project`` on a generated project of 1,000 flows, against
  parsing the same files with ``yaml.safe_load`` and validating them with
  ``jsonschema`` (no semantic checks at all).

Peak memory is the maximum resident set size of a fresh child process that runs
only that measurement, so figures for different sizes do not contaminate each
other. Records are yielded lazily, so input data is not part of the peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIELD_TYPES = ["string", "string", "integer", "decimal", "date", "email", "boolean",
               "string", "integer", "string"]


def source_records(count: int) -> Iterator[tuple[dict[str, str], str]]:
    """Yield CSV-like records (all text) with a realistic mix of values."""
    for i in range(count):
        yield ({
            "id": f"D-{i:07d}",
            "name": f"  Deal number {i}  ",
            "quantity": str(i % 977),
            "amount": f"{(i * 37) % 100000}.{i % 100:02d}",
            "closed": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "owner": f"Owner{i % 50}@Agency.Example",
            "won": "yes" if i % 3 else "no",
            "stage": "closed won",
            "seats": str(1 + i % 40),
            "region": ("EMEA", "AMER", "APAC")[i % 3],
        }, f"row {i + 2}")


def pooled_records(count: int, pool_size: int = 1000
                   ) -> Iterator[tuple[dict[str, str], str]]:
    """Yield ``count`` records cycling over a pool, so generating them costs nothing.

    The pipeline keeps nothing per record, so repeating records measures the same
    work as distinct ones; the xlsx sink, which deduplicates by key, uses
    ``source_records`` instead.
    """
    pool = list(source_records(pool_size))
    for i in range(count):
        yield pool[i % pool_size]


SOURCE_COLUMNS = ["id", "name", "quantity", "amount", "closed", "owner", "won",
                  "stage", "seats", "region"]


def build_plan() -> Any:
    from compiler.plan import (
        ColumnPlan,
        DestinationPlan,
        EntityPlan,
        FieldMapping,
        FieldPlan,
        FieldSource,
        FlowPlan,
        MapPlan,
        Normalizer,
        Plan,
        SourcePlan,
        SystemPlan,
        TriggerPlan,
    )

    fields = []
    for index, (column, field_type) in enumerate(zip(SOURCE_COLUMNS, FIELD_TYPES)):
        normalize = [Normalizer(op="trim")] if field_type == "string" else []
        fields.append(FieldPlan(name=f"f{index}_{column}", type=field_type,
                                owner="src", normalize=normalize,
                                required=index == 0))
    entity = EntityPlan(id="deal", key=[fields[0].name], fields=fields)
    flow = FlowPlan(
        id="deals",
        trigger=TriggerPlan(kind="manual"),
        source=SourcePlan(system="src", stream="rows"),
        map=MapPlan(entity="deal", fields=[
            FieldMapping(field=f.name, source=FieldSource(kind="path", path=[column]))
            for f, column in zip(fields, SOURCE_COLUMNS)]),
        destinations=[DestinationPlan(system="out", object="Deals", mode="upsert",
                                      key=[fields[0].name],
                                      columns=[ColumnPlan(field=f.name, header=f.name)
                                               for f in fields])],
    )
    return Plan(project="bench", spec_hash="sha256:bench",
                systems={"src": SystemPlan(id="src", kind="csv",
                                           settings={"path": "x.csv"}),
                         "out": SystemPlan(id="out", kind="sheets",
                                           settings={"spreadsheet": "x.xlsx"})},
                entities={"deal": entity}, flows=[flow])


def naive_model() -> tuple[Any, Any]:
    """Return the baseline: a Jinja2 template and a pydantic model per record."""
    import datetime as dt
    from decimal import Decimal

    import jinja2
    from pydantic import BaseModel, EmailStr, field_validator  # noqa: F401

    class Deal(BaseModel):
        f0_id: str
        f1_name: str
        f2_quantity: int
        f3_amount: Decimal
        f4_closed: dt.date
        f5_owner: str
        f6_won: bool
        f7_stage: str
        f8_seats: int
        f9_region: str

        @field_validator("f0_id", "f1_name", "f7_stage", "f9_region")
        @classmethod
        def strip(cls, value: str) -> str:
            return value.strip()

        @field_validator("f5_owner")
        @classmethod
        def lower(cls, value: str) -> str:
            if "@" not in value:
                raise ValueError("not an email")
            return value.strip().lower()

    body = ", ".join(f'"f{i}_{c}": {{{{ record.{c} | tojson }}}}'
                     for i, c in enumerate(SOURCE_COLUMNS))
    template = jinja2.Environment().from_string("{" + body + "}")
    return template, Deal


def run_pipeline(count: int) -> dict[str, Any]:
    from runtime.pipeline import FlowPipeline, MappedBatch

    plan = build_plan()
    pipeline = FlowPipeline(plan, plan.flows[0], {}, {})
    batch = MappedBatch()
    started = time.perf_counter()
    produced = 0
    for _ in pipeline.iter_mapped(pooled_records(count), batch):
        produced += 1
    seconds = time.perf_counter() - started
    assert produced == count and not batch.errors, batch.errors[:3]
    return {"seconds": seconds, "records": produced}


def run_naive(count: int) -> dict[str, Any]:
    template, model = naive_model()
    started = time.perf_counter()
    produced = 0
    for record, _position in pooled_records(count):
        model.model_validate(json.loads(template.render(record=record)))
        produced += 1
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "records": produced}


def run_xlsx(count: int) -> dict[str, Any]:
    from runtime.pipeline import FlowPipeline, MappedBatch
    from runtime.sheets.engine import plan_tab_sync
    from runtime.sheets.xlsx import XlsxBackend

    plan = build_plan()
    flow = plan.flows[0]
    destination = flow.destinations[0]
    types = {f.name: f.type for f in plan.entities["deal"].fields}
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        batch = MappedBatch()
        FlowPipeline(plan, flow, {}, {}).map_records(source_records(count), batch)
        backend = XlsxBackend(Path(folder) / "bench.xlsx")
        sync = plan_tab_sync(backend.read_tab("Deals"), list(batch.records.values()),
                             destination.columns, types, mode="upsert",
                             key=destination.key,
                             max_cell_chars=backend.max_cell_chars)
        backend.apply("Deals", sync.changes)
        backend.commit()
        seconds = time.perf_counter() - started
        assert sync.created == count, sync.created
    return {"seconds": seconds, "records": count}


def run_xlsx_naive(count: int) -> dict[str, Any]:
    import openpyxl

    template, model = naive_model()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        workbook = openpyxl.Workbook()
        sheet = workbook.active
        sheet.append([f"f{i}_{c}" for i, c in enumerate(SOURCE_COLUMNS)])
        for record, _position in source_records(count):
            row = model.model_validate(json.loads(template.render(record=record)))
            sheet.append(list(row.model_dump().values()))
        workbook.save(Path(folder) / "naive.xlsx")
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "records": count}


def write_big_project(folder: Path, flows: int) -> None:
    """Write a project of ``flows`` flows over 10 source systems and 100 entities.

    Each entity is owned by one source system; each flow maps one entity into a
    tab of its own, with a filter, a template and normalizers, so every check of
    the compiler has work to do.
    """
    systems = ["systems:", "  report: {kind: sheets, spreadsheet: out/report.xlsx}"]
    for i in range(10):
        systems.append(f"  src{i}: {{kind: csv, path: data/src{i}.csv,"
                       f" columns: [id, name, amount, day, owner, region]}}")
    entities = ["entities:"]
    for i in range(100):
        owner = f"src{i % 10}"
        entities.append(textwrap.indent(textwrap.dedent(f"""\
            thing{i}:
              key: id
              fields:
                id: {{type: string, owner: {owner}, required: true, normalize: [trim]}}
                name: {{type: string, owner: {owner}, normalize: [trim, collapse_spaces]}}
                amount: {{type: decimal, owner: {owner}, scale: 2, minimum: 0}}
                day: {{type: date, owner: {owner}, formats: ["%d/%m/%Y"]}}
                owner: {{type: email, owner: {owner}, normalize: [trim, lower]}}
                region: {{type: enum, owner: {owner}, values: [emea, amer, apac]}}
                label: {{type: string, owner: {owner}}}"""), "  "))
    flow_lines = ["flows:"]
    for i in range(flows):
        entity = i % 100
        flow_lines.append(textwrap.indent(textwrap.dedent(f"""\
            flow{i}:
              trigger: {{schedule: "0 * * * *"}}
              source: {{system: src{entity % 10}}}
              filter: "record.name != '{i}' and record.region in ['EMEA', 'AMER']"
              map:
                entity: thing{entity}
                fields:
                  id: id
                  name: name
                  amount: amount
                  day: day
                  owner: owner
                  region: region
                  label: "{{{{ record.name }}}} ({{{{ record.region }}}}, flow {i})"
              destinations:
                - {{system: report, object: "Tab {i}", mode: upsert}}"""), "  "))
    (folder / "syncplan.yaml").write_text(
        "version: 1\nproject: big\ninclude: [entities.yaml, flows.yaml]\n"
        + "\n".join(systems) + "\n")
    (folder / "entities.yaml").write_text("\n".join(entities) + "\n")
    (folder / "flows.yaml").write_text("\n".join(flow_lines) + "\n")


def run_compile(flows: int) -> dict[str, Any]:
    from compiler import compile_project

    with tempfile.TemporaryDirectory() as folder:
        write_big_project(Path(folder), flows)
        started = time.perf_counter()
        result = compile_project(Path(folder))
        seconds = time.perf_counter() - started
        assert result.ok, [d.to_text() for d in result.diagnostics[:3]]
    return {"seconds": seconds, "flows": flows}


def run_compile_naive(flows: int) -> dict[str, Any]:
    import yaml
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    import schemas

    registry = Registry().with_resources(
        (name, Resource.from_contents(schemas.load_schema(name)))
        for name in schemas.ALL_SCHEMAS)
    validator = Draft202012Validator(schemas.load_schema("spec.schema.json"),
                                     registry=registry)
    with tempfile.TemporaryDirectory() as folder:
        write_big_project(Path(folder), flows)
        started = time.perf_counter()
        for name in ("syncplan.yaml", "entities.yaml", "flows.yaml"):
            document = yaml.safe_load((Path(folder) / name).read_text())
            list(validator.iter_errors(document))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "flows": flows}


MEASUREMENTS = {
    "pipeline": run_pipeline,
    "naive": run_naive,
    "xlsx": run_xlsx,
    "xlsx_naive": run_xlsx_naive,
    "compile": run_compile,
    "compile_naive": run_compile_naive,
}


def child(name: str, size: int) -> None:
    result = MEASUREMENTS[name](size)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(name: str, size: int) -> dict[str, Any]:
    completed = subprocess.run([sys.executable, __file__, "--child", name, str(size)],
                               capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"{name} {size} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def rate(result: dict[str, Any]) -> str:
    return f"{result['records'] / result['seconds']:,.0f}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()},"
            f" {platform.system()} {platform.release()}")


def report(sizes: list[int], xlsx_sizes: list[int], flows: int) -> str:
    lines = ["## Pipeline: map, normalize and validate (one core)", "",
             "A 10-field entity (4 strings with trim, 2 integers, a decimal, a date, an"
             " email, a boolean), path mappings. The records cycle over a pool of 1,000"
             " generated ones, so making them is not measured; the pipeline keeps"
             " nothing per record, so the work is the same as for distinct records.",
             "",
             "| records | syncplan records/s | naive records/s | speed-up |"
             " syncplan peak RSS MiB | naive peak RSS MiB |",
             "|---:|---:|---:|---:|---:|---:|"]
    for size in sizes:
        ours, naive = measure("pipeline", size), measure("naive", size)
        speedup = naive["seconds"] / ours["seconds"]
        lines.append(f"| {size:,} | {rate(ours)} | {rate(naive)} | {speedup:.1f}x |"
                     f" {ours['peak_rss_mib']:.0f} | {naive['peak_rss_mib']:.0f} |")
    lines += ["", "## Into the xlsx sink", "",
              "The same records, deduplicated by key, synced into a new tab of a"
              " local workbook and saved; the baseline appends every row with"
              " openpyxl.", "",
              "| records | syncplan records/s | naive records/s | syncplan peak RSS MiB"
              " | naive peak RSS MiB |", "|---:|---:|---:|---:|---:|"]
    for size in xlsx_sizes:
        ours, naive = measure("xlsx", size), measure("xlsx_naive", size)
        lines.append(f"| {size:,} | {rate(ours)} | {rate(naive)} |"
                     f" {ours['peak_rss_mib']:.0f} | {naive['peak_rss_mib']:.0f} |")
    ours, naive = measure("compile", flows), measure("compile_naive", flows)
    lines += ["", "## Compile", "",
              f"A generated project of {flows:,} flows over 10 source systems and 100"
              " entities (7 fields each), in three files.", "",
              "| | seconds | peak RSS MiB |", "|---|---:|---:|",
              f"| syncplan compile (load, schema, semantic checks, plan) |"
              f" {ours['seconds']:.2f} | {ours['peak_rss_mib']:.0f} |",
              f"| baseline: yaml.safe_load + jsonschema only |"
              f" {naive['seconds']:.2f} | {naive['peak_rss_mib']:.0f} |"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--xlsx-sizes", default="10000,100000")
    parser.add_argument("--flows", type=int, default=1000)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--child", nargs=2, metavar=("NAME", "SIZE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    xlsx_sizes = [int(s) for s in args.xlsx_sizes.split(",") if s]
    text = report(sizes, xlsx_sizes, args.flows)
    header = (f"Measured by `python benchmarks/pipeline.py` on {machine()},"
              f" {time.strftime('%Y-%m-%d')}.\n\n")
    print(header + text)
    if args.output:
        args.output.write_text(header + text)


if __name__ == "__main__":
    main()
