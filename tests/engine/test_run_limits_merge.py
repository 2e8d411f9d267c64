"""A job's own limits held to the node's (engine.limits): lowered, never raised, and the
run's record saying what applied, how, what this node cannot enforce and what was held."""

from __future__ import annotations

from cronhive import runner
from cronhive.engine.limits import describe, effective
from cronhive.model import RunLimits

NODE = runner.Limits(memory_bytes=1 << 30, processes=4096, open_files=8192, file_bytes=1 << 34)


def test_no_own_limits_leave_the_node_as_it_is() -> None:
    applied = effective(NODE, None)
    assert applied.limits is None and not applied.clamped
    assert describe(applied, "rlimit") is None


def test_a_job_may_lower_a_limit_and_is_held_to_the_node_above_it() -> None:
    applied = effective(NODE, RunLimits(memory_bytes=4 << 30, processes=5, cpu_seconds=30))
    assert applied.limits == runner.Limits(
        memory_bytes=1 << 30, processes=5, open_files=8192, file_bytes=1 << 34, cpu_seconds=30
    )
    assert applied.clamped == {"memory_bytes": 4 << 30}
    text = describe(applied, "rlimit")
    assert text is not None
    assert text.startswith("rlimit: memory 1G (RLIMIT_AS, per process), processes 5 (RLIMIT_NPROC")
    assert "cpu time 30s (RLIMIT_CPU, per process)" in text
    assert text.endswith("; memory 4G asked, held to the node's 1G")


def test_unlimited_on_the_node_means_any_value_but_cpu_weight_only_goes_down() -> None:
    applied = effective(runner.Limits(), RunLimits(memory_bytes=64 << 20, cpu_weight=500))
    assert applied.limits == runner.Limits(memory_bytes=64 << 20, cpu_weight=100)
    assert applied.clamped == {"cpu_weight": 500}
    assert effective(runner.Limits(cpu_weight=1000), RunLimits(cpu_weight=500)).clamped == {}


def test_the_record_says_what_this_node_cannot_enforce() -> None:
    applied = effective(NODE, RunLimits(processes=5, cpu_weight=50))
    v1 = describe(applied, "rlimit", as_root=True) or ""
    assert "not enforced here: processes 5 (RLIMIT_NPROC does not bind root)" in v1
    assert "cpu weight 50 (needs a cgroup v2 cpu controller)" in v1
    v2 = describe(applied, "cgroup", controllers=frozenset({"memory", "pids", "cpu"})) or ""
    assert "processes 5 (pids.max, the whole run)" in v2
    assert "cpu weight 50 (cpu.weight)" in v2 and "not enforced" not in v2
