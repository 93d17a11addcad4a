"""The benchmark's results as a Markdown table, each figure beside its target."""

from __future__ import annotations

from typing import Any

Row = tuple[str, str, str, str]


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "**missed**")


def _s(value: float) -> str:
    return f"{value:.2f} s"


def _spread(ratios: list[float]) -> str:
    return f"{len(ratios)} pairs, {min(ratios):.2f} to {max(ratios):.2f}"


def rows(results: dict[str, Any]) -> list[Row]:
    table: list[Row] = []

    def add(what: str, value: str, target: str = "", ok: bool | None = None) -> None:
        table.append((what, value, target, _verdict(ok)))

    for runtime in ("local", "docker"):
        section = results.get(runtime)
        if not section:
            continue
        ready = section["ready_line_s"]["median"]
        if runtime == "local":  # issue 12's target, with SmolLM2 on this machine
            add("local: launch to `Ready`", _s(ready), "≤ 2.5 s", ready <= 2.5)
        else:
            add(f"{runtime}: launch to `Ready`", _s(ready))
        add(f"{runtime}: launch to a chat answered by the megaservice",
            _s(section["answered_s"]["median"]))
        healthy = ", ".join(f"{name} {_s(at)}" for name, at in section["healthy_at_s"].items())
        add(f"{runtime}: each service healthy at", healthy)
        lag = section["detection_lag_ms"]
        add(f"{runtime}: readiness seen after the service became healthy",
            f"median {lag['median']:.0f} ms, max {lag['max']:.0f} ms", "≤ 100 ms",
            lag["max"] <= 100)
        stop = section["stop_s"]["median"]
        add(f"{runtime}: `opea-chat stop` to nothing left", _s(stop), "< 1 s", stop < 1)
        peaks = ", ".join(f"{name} {mb:.0f} MB" for name, mb in section["peak_rss_mb"].items())
        add(f"{runtime}: peak memory", peaks)
    if results.get("compose") and results.get("docker"):
        compose = results["compose"]["answered_s"]["median"]
        ours = results["docker"]["answered_s"]["median"]
        add("docker-compose up of the exported stack to a chat answered", _s(compose))
        add("docker runtime speed-up over docker-compose", f"{compose / ours:.1f}x", "≥ 5x",
            compose / ours >= 5)
        add("docker-compose down", _s(results["compose"]["down_s"]["median"]))
    stream = results.get("streaming")
    if stream:
        add("tokens/s: llama.cpp server asked directly", f"{stream['direct_tokens_per_s']:.1f}")
        add("tokens/s: through the megaservice (app's client)",
            f"{stream['megaservice_tokens_per_s']:.1f}")
        add("tokens/s through the megaservice ÷ direct, same prompt",
            f"{stream['tokens_per_s_ratio']:.3f} ({_spread(stream['tokens_per_s_ratios'])})",
            "≥ 0.97", stream["tokens_per_s_ratio"] >= 0.97)
        add("same prompt both ways: identical answers", stream["same_answers"])
        add("time to first token: direct / through the megaservice",
            f"{stream['direct_first_token_s'] * 1000:.0f} ms / "
            f"{stream['megaservice_first_token_s'] * 1000:.0f} ms")
        add("time to first token added by the megaservice",
            f"{stream['added_first_token_ms']:.1f} ms", "≤ 20 ms",
            stream["added_first_token_ms"] <= 20)
    parallel = results.get("concurrent")
    if parallel:
        add(f"{parallel['streams']} concurrent streams: total tokens/s direct / megaservice",
            f"{parallel['direct_tokens_per_s']:.1f} / {parallel['megaservice_tokens_per_s']:.1f}"
            f" ({parallel['ratio']:.3f}, {_spread(parallel['ratios'])}); identical answers "
            f"{parallel['same_answers']}")
    in_page = results.get("page")
    if in_page:
        add("chat page vs curl: first token",
            f"{in_page['page_first_token_s'] * 1000:.0f} ms vs "
            f"{in_page['curl_first_token_s'] * 1000:.0f} ms "
            f"(+{in_page['page_added_first_token_ms']} ms)",
            "≤ +150 ms", in_page["page_added_first_token_ms"] <= 150)
        add("chat page vs curl: tokens/s reaching the screen",
            f"{in_page['page_tokens_per_s']:.1f} vs {in_page['curl_tokens_per_s']:.1f} "
            f"({in_page['page_rate_vs_curl']:.2f}x)", "≥ 0.9x",
            in_page["page_rate_vs_curl"] >= 0.9)
        if "page_streamed_tokens_per_s" in in_page:
            add("chat page: tokens/s the app's client received while the page drew them",
                f"{in_page['page_streamed_tokens_per_s']:.1f}")
        if "page_answer_stored_s" in in_page:
            add("chat page vs curl: whole answer on screen / stored with its statistics",
                f"{_s(in_page['page_answer_on_screen_s'])} / "
                f"{_s(in_page['page_answer_stored_s'])} (curl: last token at "
                f"{_s(in_page['curl_answer_s'])})")
    cli = results.get("cli", {})
    if "help" in cli:
        add("`opea-chat --help`", _s(cli["help"]["median"]), "≤ 0.3 s",
            cli["help"]["median"] <= 0.3)
    if "status_not_running" in cli:
        add("`opea-chat status` (nothing running)", _s(cli["status_not_running"]["median"]))
    if results.get("status_running_s"):
        add("`opea-chat status` (a session running)", _s(results["status_running_s"]["median"]))
    if "doctor" in cli:
        add("`opea-chat doctor`", _s(cli["doctor"]["median"]), "≤ 2 s",
            cli["doctor"]["median"] <= 2)
    soaked = results.get("soak")
    if soaked:
        add(f"soak: {soaked['chats']} chats, {soaked['parallel']} at a time: errors",
            str(soaked["errors"]), "0", soaked["errors"] == 0)
        worst = max(soaked["rss_growth"].items(), key=lambda item: item[1])
        growth = ", ".join(f"{name} {value * 100:+.1f}%"
                           for name, value in soaked["rss_growth"].items())
        checkpoint = next(key for key in soaked if key.startswith("rss_mb_after_")
                          ).removeprefix("rss_mb_after_")
        add(f"soak: memory after all chats against after the first {checkpoint}", growth,
            "≤ +10%", worst[1] <= 0.10)
    return table


def markdown(results: dict[str, Any]) -> str:
    lines = ["| measure | result | target | |", "|---|---|---|---|"]
    lines += [f"| {what} | {value} | {target} | {verdict} |"
              for what, value, target, verdict in rows(results)]
    return "\n".join(lines) + "\n"


def performance_page(results: dict[str, Any], table: str, findings: str = "") -> str:
    """docs/performance.md: the latest table, the machine, how to reproduce, then
    ``findings`` (bench/findings.md: what earlier runs led to, written by hand)."""
    machine = results["machine"]
    load = ", ".join(f"{value:.2f}" for value in machine["load_average_at_start"])
    return f"""# Performance

The latest run of `python -m bench` ({machine['date']}), with {results['model']}:

{table}
Each figure is the median of several runs; every comparison is measured side by side in the
same run (the llama.cpp server asked directly against the same server through OPEA's
megaservice; `opea-chat launch --runtime docker` against `docker-compose up` of the stack
`opea-chat export compose` writes, with the same images). Readiness lag is the time between
a service answering its health check (seen by a prober polling every 5 ms) and the
launcher reporting it healthy.

## The machine

- CPU: {machine['cpu']}; memory: {machine['memory_gb']} GB; no GPU
- {machine['os']}; Python {machine['python']}
- load average when the run started: {load}
  (the machine is shared: absolute times vary between runs, ratios much less)

## Reproduce

```sh
scripts/install.sh        # the README's setup, once
scripts/bench.sh --write-docs
```

`scripts/bench.sh` installs the Docker engine and builds the test images when they are
missing, starts the engine for the run and stops it after. `--no-docker` skips the docker
runtime and docker-compose; `--runs`, `--stream-runs` and `--soak` set the repetitions. The
raw numbers are in `bench/results.json`, the table alone in `bench/results.md`. The section
below is `bench/findings.md`; after editing it, `.venv/bin/python -m bench --docs-only`
rewrites this page from the last results without measuring again.
""" + (f"\n{findings.strip()}\n" if findings.strip() else "")
