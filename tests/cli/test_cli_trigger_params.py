"""`cronhive trigger NAME --env K=V -- ARGS`: one run with other env values and extra
arguments, recorded on the run; the job itself is unchanged."""

from __future__ import annotations

import json

from clikit import Cli


def test_trigger_with_env_and_extra_args(cli: Cli) -> None:
    cli.ok("add", "greet-params", "--env", "WHO=world", "--env", "MOOD=calm", "--", "sh", "-c",
           'echo "$GREETING $WHO $MOOD" "$@"', "greet-params")  # fmt: skip
    cli.ok(
        "edit", "greet-params", "--env", "WHO=world", "--env", "MOOD=calm", "--env", "GREETING=hi"
    )
    plain = cli("trigger", "-f", "greet-params")
    assert (plain.returncode, plain.stdout) == (0, "hi world calm\n"), plain.stderr
    done = cli("trigger", "-f", "greet-params", "--env", "WHO=there", "--", "and", "more words")
    assert (done.returncode, done.stdout) == (0, "hi there calm and more words\n"), done.stderr

    newest = json.loads(cli.ok("history", "greet-params", "-n", "1", "--json"))[0]
    assert newest["env"] == {"GREETING": "hi", "MOOD": "calm", "WHO": "there"}
    assert newest["command"][-2:] == ["and", "more words"]
    shown = cli.ok("status", newest["id"])
    assert "WHO=there" in shown and "'more words'" in shown
    job = json.loads(cli.ok("show", "greet-params", "--json"))
    assert job["env"]["WHO"] == "world" and job["command"][-1] == "greet-params"  # unchanged
    events = cli.ok("events", "--job", "greet-params")
    assert "with env WHO and 2 extra arguments" in events


def test_a_shell_job_gets_the_args_as_positional_parameters(cli: Cli) -> None:
    cli.ok("add", "shell-params", "--shell", "--", 'echo "first=$1 count=$#"')
    done = cli("trigger", "-f", "shell-params", "--", "a b", "c")
    assert (done.returncode, done.stdout) == (0, "first=a b count=2\n"), done.stderr


def test_bad_parameters_are_refused(cli: Cli) -> None:
    cli.ok("add", "param-checks", "--", "true")
    bad_env = cli("trigger", "param-checks", "--env", "1BAD=x")
    assert bad_env.returncode == 2 and "bad variable name" in bad_env.stderr
    no_value = cli("trigger", "param-checks", "--env", "NOVALUE")
    assert no_value.returncode == 2 and "expected NAME=VALUE" in no_value.stderr
    long = cli("trigger", "param-checks", "--", "x" * 5000)  # the job's own limits hold
    assert long.returncode == 2 and "longer than 4096 bytes" in long.stderr
