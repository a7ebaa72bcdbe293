"""BENCHMARKS.md from the results of one ``make bench`` run (bench.py measures, this writes)."""

from __future__ import annotations

import io
import statistics

from ignite_lab.outputs.tables import markdown


def report(r: dict) -> str:
    out = io.StringIO()
    out.write(
        "# Benchmarks\n\nWritten by `make bench` (benchmarks/bench.py); every figure below comes from that run.\n\n"
    )
    out.write(f"- Date: {r['date']}\n- Machine: {r['machine']}\n- Command: `{r['command']}`")
    out.write(f" at commit {r['commit']}\n\n" if r.get("commit") else "\n\n")

    for section in (overhead, pipeline, speed, time_to_target, memory, compiled):
        out.write(section(r))
    return out.getvalue()


def table(header: list[str], rows: list[list]) -> str:
    return markdown(header, rows) + "\n\n"


def overhead(r: dict) -> str:
    text = (
        "## 1. Overhead: a hand loop, bare Ignite, ignite-lab and PyTorch Lightning\n\n"
        "The same recipe parts (model, optimizer, loss, seed) and the same in-memory batches in the same order, "
        "trained by: a minimal PyTorch loop (zero_grad, forward, loss, backward, step, loss.item()); Ignite's "
        "`create_supervised_trainer` with nothing attached; ignite-lab's trainer with all its standard handlers "
        "(progress bar forced on, logging, training metrics, NaN guard, throughput, checkpointing, Ctrl-C guard); "
        "and PyTorch Lightning 2.6's default `Trainer` (progress bar on; logger, checkpointing and model summary "
        "off), a bench-only extra. Milliseconds per iteration are medians over interleaved repeats; ratios are "
        "to the hand loop. Targets: ignite-lab at most 1.05x on the CNN and 1.10x on the small models (the MLP, "
        "XOR, FizzBuzz; the last two time their whole epoch of 50 and 13 steps). 'over bare Ignite' is ignite-lab's "
        "time over bare Ignite's: what its handlers add to Ignite's engine with nothing attached. 'max loss diff' "
        "compares each loop's per-iteration losses with the hand loop's.\n\n"
    )
    rows = []
    for o in r["overhead"]:
        cells = [f"{o['ms'][k]:.3f} ({o['ratio'][k]:.2f}x)" for k in ("hand", "ignite", "ignite-lab", "lightning")]
        diffs = ", ".join(f"{k} {v:.0e}" for k, v in o["max_loss_diff"].items() if k != "hand")
        over = o["ms"]["ignite-lab"] / o["ms"]["ignite"]
        rows.append([o["name"], o["iterations"], *cells, f"{over:.2f}x", diffs])
    header = ["model", "iterations", "hand loop ms", "bare Ignite ms", "ignite-lab ms", "Lightning ms"]
    header += ["over bare Ignite", "max loss diff"]
    return text + table(header, rows)


def pipeline(r: dict) -> str:
    text = (
        "## 2. Input pipeline: decoded once into uint8 tensors vs. per-sample\n\n"
        "The fast path (ignite-lab's default where data fits in memory) decodes once, keeps uint8 tensors, slices "
        "batches and normalizes each batch; the per-sample path is torchvision's (a Dataset transforming one sample "
        "at a time, DataLoader with 2 workers, batch 128). Samples per second, median of repeats; 'same values' "
        "checks the first 256 samples of both paths are equal.\n\n"
    )
    rows = [
        [
            p["name"],
            f"{p['fast']:,.0f}",
            f"{p['per_sample']:,.0f}",
            f"{p['speedup']:.1f}x",
            "yes" if p["same"] else "NO",
        ]
        for p in r["pipeline"]
    ]
    return text + table(["data", "fast path samples/s", "per-sample samples/s", "speed-up", "same values"], rows)


def speed(r: dict) -> str:
    text = (
        "## 3. Speed: before and after, side by side\n\n"
        "Each case trained one epoch of the number of batches shown, on the real data, twice in a row: as every "
        "conv recipe trained before (`--precision 32 --set channels_last=false`) and the fast way (`--precision bf16 "
        "--set channels_last=true`: bfloat16 autocast on this CPU's AVX-512 BF16, NHWC convolutions). Training "
        "samples per second over the iterations; the validation metric after those batches shows the speed "
        "costs no accuracy. Targets: RandWire and LinkNet 2x, the SimpleCNN and the MNIST CNN 1.5x.\n\n"
    )
    rows = [
        [
            s["case"],
            s["batches"],
            f"{s['before']:,.1f}",
            f"{s['fast']:,.1f}",
            f"**{s['speedup']:.2f}x**",
            f"{s['metric']} {fmt(s['before_metric'])} / {fmt(s['fast_metric'])}",
            f"{s['before_rss']:.0f} / {s['fast_rss']:.0f}",
        ]
        for s in r["speed"]
    ]
    header = ["case", "batches", "before samples/s", "fast samples/s", "speed-up", "val before / fast", "peak RSS MB"]
    return text + table(header, rows)


def time_to_target(r: dict) -> str:
    if not r.get("ttt"):
        return ""
    text = (
        "## 4. Time to target\n\n`ignite-lab run NAME --stop-at TARGET` in a fresh process for each recipe, its "
        "default and its book preset: the wall time from the start (imports, loading the data, every validation) "
        "to the end of the test of the first checkpoint whose validation score reached the target, with that "
        "test's figure. A run that never reaches the target trains all its epochs; the row then gives its best "
        "validation score. Runs under 5 minutes are repeated with 3 seeds (median wall time and median test "
        "figure). A preset whose REPRODUCE.md row (of its current configuration) ran over 45 minutes is quoted "
        "from that row (reached: `whole run`): its full run on the machine named, tested with the weights that "
        "row tests. 'met' asks whether the median test figure reached the target within the target's time.\n\n"
    )
    rows, limits = [], {}
    for row in r["ttt"]:
        seeds = row["seeds"]
        reached = sum(bool(s["reached"]) for s in seeds)
        limits.setdefault(row["recipe"], [row["limits"]] if row.get("limits") else [])
        limits[row["recipe"]] += [timing] if (timing := where_time_went(row)) else []
        tests = [s["test"][row["score"]] for s in seeds if isinstance(s["test"].get(row["score"]), float)]
        test = statistics.median(tests) if tests else None
        best = ", ".join(f"{s['best_val']:.4g}" for s in seeds if s["best_val"] is not None)
        rows.append(
            [
                row["recipe"],
                row["preset"],
                f"val {row['score']} {row['target']:g}",
                f"whole run ({row['quoted']})" if row.get("quoted") else f"{reached} of {len(seeds)}",
                f"{row['median_wall_s']:.1f}",
                f"{row['budget_s']}",
                "-" if test is None else f"{test:.4g}",
                met(row, test),
                best if reached < len(seeds) and best else "-",
                ", ".join(str(s["epochs"]) for s in seeds),
            ]
        )
    header = ["recipe", "preset", "target", "reached", "median wall s", "target s", "median test", "met", "best val"]
    notes = "".join(f"- {name}: {'; '.join(parts)}\n" for name, parts in limits.items() if parts)
    return text + table([*header, "epochs"], rows) + ("What limits each:\n\n" + notes + "\n" if notes else "")


def where_time_went(row: dict) -> str:
    """'default: 6.1 s of start-up, data and test, then 5.2 s an epoch', medians over the row's seeds."""
    timed = [s for s in row["seeds"] if s.get("train_s") and s["epochs"]]
    if not timed:
        return ""
    startup = statistics.median(s["wall_s"] - s["train_s"] for s in timed)
    epoch = statistics.median(s["train_s"] / s["epochs"] for s in timed)
    return f"{row['preset']}: {startup:.1f} s of start-up, data and test, {epoch:.1f} s an epoch with its validation"


def met(row: dict, test: float | None) -> str:
    """'yes', or which half of the target (score, time) was missed."""
    if test is None:
        return "no (no test figure)"
    good = test >= row["target"] if row.get("mode", "max") == "max" else test <= row["target"]
    missed = [why for why, ok in (("score", good), ("time", row["median_wall_s"] <= row["budget_s"])) if not ok]
    return "yes" if not missed else f"no ({', '.join(missed)})"


def memory(r: dict) -> str:
    text = (
        f"## 5. Throughput and peak memory of each default run\n\nOne epoch of {r['batches']} batches "
        f"(`--epochs 1 --limit-batches {r['batches']}`) in a fresh process; throughput is training samples per "
        "second over the iterations; peak RSS is the process's VmHWM. "
    )
    if r.get("imports"):
        text += (
            f"A process that only imports torch peaks at {r['imports']['torch']:.0f} MB here (this CUDA build of "
            f"torch maps its CUDA libraries even without a GPU), and one that imports ignite-lab's command line "
            f"at {r['imports']['ignite-lab']:.0f} MB, before any data. "
        )
    text += (
        "Targets: CIFAR-10 at most 1.0 GB, LinkNet on 701 CamVid-sized images at most 1.5 GB, every other default "
        "run under 1.0 GB.\n\n"
    )
    rows = [[m["recipe"], m["data"], f"{m['rate'] or 0:,.0f}", f"{m['peak_rss_mb']:.0f}"] for m in r["memory"]]
    return text + table(["recipe", "data", "samples/s", "peak RSS MB"], rows)


def compiled(r: dict) -> str:
    if not r.get("compile"):
        return ""
    text = (
        "## 6. torch.compile\n\nEach recipe's real training step, eager and under `torch.compile` (inductor), on the "
        "same batches: median ms per step after warm-up, the first compiled step's seconds (the compile), and after "
        "how many steps compiling would pay back, beside the steps of a default run. "
    )
    if not all(c.get("fresh_cache") for c in r["compile"] if "error" not in c):
        text += (
            "This run's compiles found inductor's cache from earlier runs on the machine, so their seconds are "
            "less than a first compile costs. "
        )
    paying = [c["recipe"] for c in r["compile"] if c.get("pays_back")]
    text += (
        f"It paid back within a default run for {', '.join(paying)} on this machine.\n\n"
        if paying
        else "On this machine it paid back for none of them, which is why ignite-lab has no `--compile` flag.\n\n"
    )
    rows = []
    for c in r["compile"]:
        if "error" in c:
            rows.append([c["recipe"], "-", "-", "-", f"failed: {c['error']}", "-"])
            continue
        pays = f"{c['pays_back_after_steps']:,.0f}" if c["pays_back_after_steps"] else "never (slower)"
        rows.append(
            [
                c["recipe"],
                f"{c['eager_ms']:.1f}",
                f"{c['compiled_ms']:.1f}",
                f"{c['compile_s']:.1f}",
                pays,
                f"{c['steps_in_default_run']:,}",
            ]
        )
    return text + table(
        ["recipe", "eager ms/step", "compiled ms/step", "compile s", "pays back after", "steps in a default run"], rows
    )


def fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"
