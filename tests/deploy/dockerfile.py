"""A small Dockerfile reader and the checks deploy/Dockerfile must pass.

Each check returns a list of problems (empty: fine), so the tests can show that a broken
Dockerfile is caught as well as that the real one passes.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and blank lines dropped."""
    out: list[Instruction] = []
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # also inside a continuation, as Docker does
        if not buf:
            start = number
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, rest = buf.partition(" ")
        out.append(Instruction(keyword.upper(), rest.strip(), start))
        buf = ""
    if buf:
        raise ValueError("the Dockerfile ends inside a line continuation")
    return out


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """One list per FROM, each starting with its FROM."""
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([ins])
        elif result:
            result[-1].append(ins)
    return result


def exec_form(value: str) -> list[str] | None:
    if not value.startswith("["):
        return None
    parsed = json.loads(value)
    if not isinstance(parsed, list) or not all(isinstance(p, str) for p in parsed):
        raise ValueError(f"not a JSON array of strings: {value}")
    return parsed


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword == "ENV":
            for part in shlex.split(ins.value):
                key, sep, value = part.partition("=")
                if not sep:
                    raise ValueError(f"line {ins.line}: use ENV KEY=VALUE")
                env[key] = value
    return env


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    return {
        key: value
        for ins in instructions
        if ins.keyword == "ARG"
        for key, sep, value in [ins.value.partition("=")]
        if sep
    }


# --- pip install commands ------------------------------------------------------------------

# options that change how pip runs, not what it installs
QUIET_OPTIONS = {
    "-q",
    "-qq",
    "--quiet",
    "--no-cache-dir",
    "--disable-pip-version-check",
    "--no-input",
    "--root-user-action=ignore",
}


@dataclass(frozen=True)
class Requirement:
    target: str
    extras: frozenset[str]
    editable: bool
    upgrade: bool


def shell_commands(script: str) -> list[list[str]]:
    """A shell line split into simple commands at &&, ||, ; and |."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", "||", ";", "|"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def pip_install_args(command: list[str]) -> list[str] | None:
    """The arguments after `pip install` (`pip`, `pip3` or `python -m pip`), else None."""
    for i, token in enumerate(command[:-1]):
        is_pip = token.rsplit("/", 1)[-1] in ("pip", "pip3") and (i == 0 or command[i - 1] == "-m")
        if is_pip and command[i + 1] == "install":
            return command[i + 2 :]
    return None


def requirements(args: list[str]) -> tuple[list[Requirement], list[str]]:
    """What a pip install installs, and the options that would change it (problems)."""
    upgrade = any(a in ("-U", "--upgrade") for a in args)
    found: list[Requirement] = []
    problems: list[str] = []
    editable = False
    for arg in args:
        if arg in ("-e", "--editable"):
            editable = True
            continue
        if arg in ("-U", "--upgrade") or arg in QUIET_OPTIONS:
            continue
        if arg.startswith("-"):
            problems.append(f"pip option {arg!r} changes what is installed")
            continue
        match = re.fullmatch(r"([^\[\]]+)(?:\[([^\]]*)\])?", arg)
        if match is None:
            problems.append(f"cannot read requirement {arg!r}")
            continue
        extras = frozenset(e.strip() for e in (match.group(2) or "").split(",") if e.strip())
        found.append(Requirement(match.group(1), extras, editable, upgrade))
        editable = False
    return found, problems


def dev_installs(dev_script: str) -> list[Requirement]:
    """What `./dev` installs with pip (the README's install)."""
    found: list[Requirement] = []
    for line in dev_script.splitlines():
        if "pip" not in line or line.lstrip().startswith("#"):
            continue
        for command in shell_commands(line):
            args = pip_install_args(command)
            if args is not None:
                found.extend(requirements(args)[0])
    return found


def check_pip_installs(
    dockerfile: str, dev_script: str, extras_defined: set[str], test_extra: str = "test"
) -> list[str]:
    """The image installs the project as `./dev` does, minus the test extras, and nothing
    that `./dev` does not install."""
    problems: list[str] = []
    dev = dev_installs(dev_script)
    dev_project = [r for r in dev if r.target == "."]
    if len(dev_project) != 1:
        return [f"./dev should install the project (.) once, found {dev_project}"]
    dev_others = {r for r in dev if r.target != "."}
    project: list[Requirement] = []
    for ins in parse(dockerfile):
        if ins.keyword != "RUN":
            continue
        for command in shell_commands(ins.value):
            args = pip_install_args(command)
            if args is None:
                continue
            found, bad = requirements(args)
            problems += [f"line {ins.line}: {p}" for p in bad]
            for req in found:
                if req.target == ".":
                    project.append(req)
                    if req.editable != dev_project[0].editable:
                        problems.append(
                            f"line {ins.line}: ./dev installs the project "
                            f"{'editable' if dev_project[0].editable else 'not editable'}"
                        )
                    if test_extra in req.extras:
                        problems.append(f"line {ins.line}: the image installs the test extras")
                    unknown = req.extras - extras_defined
                    if unknown:
                        problems.append(f"line {ins.line}: unknown extras {sorted(unknown)}")
                elif req not in dev_others:
                    problems.append(
                        f"line {ins.line}: {req.target!r} is not installed by ./dev "
                        "(the image installs what the README installs, nothing else)"
                    )
    if len(project) != 1:
        problems.append(f"the project (.) should be installed once, found {len(project)} times")
    return problems


# --- the runtime stage ---------------------------------------------------------------------


def check_stages(dockerfile: str, needed_sources: set[str]) -> list[str]:
    """Multi-stage: a build stage fed from the context, a final stage fed from it."""
    all_stages = stages(parse(dockerfile))
    if len(all_stages) < 2:
        return [f"expected a multi-stage build, found {len(all_stages)} stage(s)"]
    problems = []
    final = all_stages[-1]
    copies = [i for i in final if i.keyword == "COPY"]
    if not any(i.value.startswith("--from=") for i in copies):
        problems.append("the final stage copies nothing from an earlier stage")
    if any(not i.value.startswith("--from=") for i in copies):
        problems.append("the final stage copies from the build context: build in a build stage")
    sources: set[str] = set()
    for stage in all_stages[:-1]:
        for ins in stage:
            if ins.keyword == "COPY" and not ins.value.startswith("--"):
                sources.update(s.rstrip("/") for s in shlex.split(ins.value)[:-1])
    missing = needed_sources - sources
    if missing:
        problems.append(f"the build stage does not copy {sorted(missing)}")
    return problems


def final_user(dockerfile: str) -> str | None:
    users = [i.value for i in stages(parse(dockerfile))[-1] if i.keyword == "USER"]
    return users[-1] if users else None


def check_user(dockerfile: str) -> list[str]:
    user = final_user(dockerfile)
    if user is None:
        return ["no USER in the final stage: the container would run as root"]
    name = user.split(":", 1)[0]
    if not name.isdigit():
        return [f"USER {user}: use a numeric uid (Kubernetes runAsNonRoot can check only those)"]
    if int(name) == 0:
        return [f"USER {user} is root"]
    return []


def check_entrypoint(dockerfile: str) -> list[str]:
    final = stages(parse(dockerfile))[-1]
    argv: list[str] = []
    for keyword in ("ENTRYPOINT", "CMD"):
        values = [i.value for i in final if i.keyword == keyword]
        if not values:
            continue
        form = exec_form(values[-1])
        if form is None:
            return [f"{keyword} must use the exec form (so signals reach the broker)"]
        argv += form
    if argv != ["broker", "serve"]:
        return [f"the container runs {argv}, not ['broker', 'serve']"]
    return []


def check_healthcheck(dockerfile: str, path: str = "/healthz") -> list[str]:
    checks = [i.value for i in stages(parse(dockerfile))[-1] if i.keyword == "HEALTHCHECK"]
    if not checks:
        return ["no HEALTHCHECK in the final stage"]
    tokens = checks[-1].split()
    if "CMD" not in tokens:
        return [f"HEALTHCHECK {checks[-1]!r} runs no command"]
    command = checks[-1][checks[-1].index("CMD") + 3 :].strip()
    if path not in command:
        return [f"HEALTHCHECK does not ask {path}: {command}"]
    return []


def check_expose(dockerfile: str, default_port: int) -> list[str]:
    final = stages(parse(dockerfile))[-1]
    exposed = {p.split("/")[0] for i in final if i.keyword == "EXPOSE" for p in i.value.split()}
    problems = []
    if exposed != {str(default_port)}:
        problems.append(f"EXPOSE {sorted(exposed)} is not BROKER_PORT's default {default_port}")
    port = env_of(final).get("BROKER_PORT")
    if port is not None and port != str(default_port):
        problems.append(f"ENV BROKER_PORT={port} differs from EXPOSE {default_port}")
    return problems


def check_python(dockerfile: str, requires_python: str) -> list[str]:
    image = arg_defaults(parse(dockerfile)).get("PYTHON_IMAGE", "")
    match = re.fullmatch(r"python:(\d+\.\d+)[^/]*", image)
    if match is None:
        return [f"ARG PYTHON_IMAGE={image!r} is not an official python:X.Y image"]
    if Version(match.group(1)) not in SpecifierSet(requires_python):
        return [f"{image} does not satisfy requires-python {requires_python}"]
    return []


def dockerignore_allows(ignore_text: str, path: str) -> bool:
    """Whether a context path survives a `*` + `!path` style .dockerignore (the last
    matching line wins, as in Docker)."""
    allowed = True
    for raw in ignore_text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        if pattern == "*" or path == pattern or path.startswith(pattern + "/"):
            allowed = negate
    return allowed


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")
