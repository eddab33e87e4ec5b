"""The recipes in conf/deploy/ name jobs, arguments, jars and archives that exist: each is parsed, none is run.

A recipe that drifts from the code (a job renamed, an option dropped, a Delta or Splink jar upgraded by `make setup`,
a version bump) fails here in seconds, without a cluster and without a JVM.
"""
from __future__ import annotations

import argparse
import ast
import configparser
import runpy
import shlex
from pathlib import Path

import pytest
import yaml

from bold_spark.session import SESSION_DEFAULTS, session_jars

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = PROJECT_ROOT / "conf" / "deploy"
SUBMIT_FLAGS = {"--verbose", "--supervise"}  # spark-submit options that take no value


def _version() -> str:
    setup = configparser.ConfigParser()
    setup.read(PROJECT_ROOT / "setup.cfg")
    return setup["metadata"]["version"]


def _expected_jars() -> list[str]:
    """The jar files `make setup` resolved (Delta) and Splink ships: what `make package` copies to dist/jars."""
    return sorted(Path(jar).name for jar in session_jars(PROJECT_ROOT / "var" / "ivy" / "jars"))


class _Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace) -> None:
        self.namespace = namespace


def parse_with_the_jobs_parser(job: str, arguments: list[str]) -> argparse.Namespace:
    """Run jobs/<job> as a script up to its argument parsing, with ``arguments`` as its command line, and stop there
    (nothing after parsing runs: no configuration is loaded, no session is built)."""
    parse_args = argparse.ArgumentParser.parse_args

    def parse_instead(self, args=None, namespace=None):
        raise _Parsed(parse_args(self, arguments, namespace))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_args", parse_instead)
        mp.syspath_prepend(str(PROJECT_ROOT / "jobs"))
        try:
            runpy.run_path(str(PROJECT_ROOT / "jobs" / job), run_name="__main__")
        except _Parsed as parsed:
            return parsed.namespace
        except SystemExit as exc:
            pytest.fail(f"jobs/{job} refuses the arguments {arguments} (exit {exc.code})")
    pytest.fail(f"jobs/{job} ended without parsing its arguments")


def _job_of(path: str) -> str:
    """jobs/link.py from a local path or a URI such as local:///data/bold_spark/jobs/link.py."""
    assert "jobs/" in path, path
    job = path.rsplit("jobs/", 1)[1]
    assert (PROJECT_ROOT / "jobs" / job).is_file(), f"{path}: no such job in jobs/"
    return job


def _check_job_and_arguments(application: str, arguments: list[str]) -> argparse.Namespace:
    args = parse_with_the_jobs_parser(_job_of(application), arguments)
    assert (PROJECT_ROOT / args.conf).is_file(), f"--conf {args.conf}: not in the conf/ folder make package ships"
    return args


def _check_archives(archives: list[str]) -> None:
    names = sorted(Path(a).name for a in archives)
    assert names == sorted([f"bold_spark-{_version()}-env.tar.gz#environment", "conf.tar.gz#conf"])


def _spark_submit_tokens(script: Path) -> list[str]:
    text = script.read_text().replace("\\\n", " ")
    lines = [line for line in text.splitlines() if line.strip().startswith("spark-submit ")]
    assert len(lines) == 1, f"{script}: expected one spark-submit command"
    return shlex.split(lines[0])


def _split_submit(tokens: list[str]) -> tuple[dict[str, list[str]], str, list[str]]:
    """spark-submit's options (each with its values), the application and the application's arguments."""
    options: dict[str, list[str]] = {}
    i = 1
    while tokens[i].startswith("--"):
        if tokens[i] in SUBMIT_FLAGS:
            options.setdefault(tokens[i], []).append("")
            i += 1
        else:
            options.setdefault(tokens[i], []).append(tokens[i + 1])
            i += 2
    return options, tokens[i], tokens[i + 1:]


def _check_spark_conf(conf: dict[str, str]) -> None:
    assert conf["spark.pyspark.python"] == "./environment/bin/python"  # inside the unpacked environment archive
    for key in ("spark.sql.extensions", "spark.sql.catalog.spark_catalog", "spark.sql.session.timeZone"):
        assert conf[key] == SESSION_DEFAULTS[key], key


def test_the_yarn_example_submits_a_job_with_arguments_jars_and_archives_that_exist():
    options, application, arguments = _split_submit(_spark_submit_tokens(DEPLOY / "yarn-submit.sh"))
    assert options["--master"] == ["yarn"] and options["--deploy-mode"] == ["cluster"]
    assert _check_job_and_arguments(application, arguments).incremental
    assert sorted(Path(j).name for j in options["--jars"][0].split(",")) == _expected_jars()
    _check_archives(options["--archives"][0].split(","))
    assert [_job_of(f) for f in options["--py-files"][0].split(",")] == ["_common.py"]
    _check_spark_conf(dict(c.split("=", 1) for c in options["--conf"]))


def test_the_kubernetes_manifest_is_a_spark_application_with_jobs_jars_and_archives_that_exist():
    manifest = yaml.safe_load((DEPLOY / "spark-application.yaml").read_text())
    assert (manifest["apiVersion"], manifest["kind"]) == ("sparkoperator.k8s.io/v1beta2", "SparkApplication")
    spec = manifest["spec"]
    assert (spec["type"], spec["mode"]) == ("Python", "cluster")
    assert _check_job_and_arguments(spec["mainApplicationFile"], spec["arguments"]).incremental
    assert sorted(Path(j).name for j in spec["deps"]["jars"]) == _expected_jars()
    _check_archives(spec["deps"]["archives"])
    assert [_job_of(f) for f in spec["deps"]["pyFiles"]] == ["_common.py"]
    _check_spark_conf(spec["sparkConf"])
    mounts = {m["name"] for role in ("driver", "executor") for m in spec[role]["volumeMounts"]}
    assert mounts == {v["name"] for v in spec["volumes"]}  # driver and executors see the same shared storage


def _constants(module: ast.Module) -> dict[str, object]:
    """The module's top-level constants, evaluated in order from literals and the constants before them."""
    values: dict[str, object] = {}
    for node in module.body:
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            try:
                value = eval(compile(ast.Expression(node.value), "<dag>", "eval"), {"__builtins__": {}}, values)
            except Exception:  # noqa: BLE001 - not a constant (an Airflow object): skipped
                continue
            values.update({t.id: value for t in node.targets})
    return values


def _dags(module: ast.Module) -> dict[str, tuple[ast.expr, list[str]]]:
    """Each `with DAG(...)` block: dag_id -> (its schedule expression, the task ids its submit(...) calls make)."""
    dags = {}
    for node in module.body:
        if isinstance(node, ast.With):
            call = node.items[0].context_expr
            assert isinstance(call, ast.Call) and call.func.id == "DAG"
            keywords = {k.arg: k.value for k in call.keywords}
            tasks = [c.args[0].value for c in ast.walk(node) if isinstance(c, ast.Call)
                     and getattr(c.func, "id", None) == "submit"]
            dags[keywords["dag_id"].value] = (keywords["schedule"], sorted(tasks))
    return dags


def test_the_airflow_dags_train_monthly_and_link_incrementally_on_each_delivery():
    module = ast.parse((DEPLOY / "airflow_dag.py").read_text())
    constants = _constants(module)
    operators = [n for n in ast.walk(module) if isinstance(n, ast.Call)
                 and getattr(n.func, "id", None) == "SparkSubmitOperator"]
    assert len(operators) == 1  # every task goes through submit(): one set of jars, archives and settings
    train, link = _dags(module)["bold_spark_train"], _dags(module)["bold_spark_link"]
    assert ast.literal_eval(train[0]) == "@monthly" and train[1] == ["full_link", "train"]
    assert ast.unparse(link[0]) == "deliveries" and link[1] == ["incremental_link"]
    assert sorted(constants["DELIVERIES"]) == sorted(  # one Dataset per configured demo source
        yaml.safe_load(f.read_text())["name"] for f in (PROJECT_ROOT / "conf" / "sources" / "demo").glob("*.yaml"))
    parsed = {task: _check_job_and_arguments(f"jobs/{job}", arguments)
              for task, (job, arguments) in constants["JOBS"].items()}
    assert [task for task, args in parsed.items() if getattr(args, "incremental", False)] == ["incremental_link"]
    assert sorted(constants["JARS"]) == _expected_jars()
    archives = ast.unparse(next(k.value for k in operators[0].keywords if k.arg == "archives"))
    assert "{ENV_ARCHIVE}#environment" in archives and "dist/conf.tar.gz#conf" in archives
    _check_archives([constants["ENV_ARCHIVE"] + "#environment", "conf.tar.gz#conf"])
    _check_spark_conf(constants["SPARK_CONF"])
    assert constants["SPARK_CONF"]["spark.submit.deployMode"] == "cluster"
