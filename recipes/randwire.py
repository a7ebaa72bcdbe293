"""RandWireNN on CIFAR-10 ("Mastering PyTorch", chapter 5; Xie et al. 2019, randomly wired networks).

Each stage is a random graph from networkx (Watts-Strogatz by default, Erdos-Renyi or
Barabasi-Albert by setting) made acyclic by pointing every edge from the lower to the higher
node index. A node sums its inputs with learnable sigmoid weights, then ReLU -> separable 3x3
conv -> BatchNorm (-> dropout); input nodes take the stage input at stride 2 and the stage
output is the average of the output nodes. The graphs are saved in the run directory
(graphs.json) and reloaded by ``eval`` and ``--resume``, so a checkpoint meets its own wiring.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import networkx as nx
import numpy as np
import torch
from ignite.engine import Events
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Recipe, RunView, TrainConfig, UserError, recipe_main
from ignite_lab.datasets import cifar10_splits
from ignite_lab.plots import figure_to_array


@dataclass
class Settings:
    graph: Literal["ws", "er", "ba"] = field(
        default="ws", metadata={"help": "Watts-Strogatz, Erdos-Renyi, Barabasi-Albert"}
    )
    nodes: int = field(default=16, metadata={"help": "nodes per random graph"})
    k: int = field(default=4, metadata={"help": "WS: neighbours in the ring lattice"})
    p: float = field(default=0.7, metadata={"help": "WS: rewiring probability; ER: edge probability"})
    m: int = field(default=5, metadata={"help": "BA: edges from each new node"})
    graph_seed: int = field(default=0, metadata={"help": "seed of the graph generator"})
    stages: int = field(default=3, metadata={"help": "random-graph stages (channels double each)"})
    channels: int = field(default=64, metadata={"help": "channels of the first stage"})
    dropout: float = field(default=0.2, metadata={"help": "dropout before the classifier"})
    augment: bool = field(default=False, metadata={"help": "random flips and padded crops while training"})


GRAPH_KEYS = ("graph", "nodes", "k", "p", "m", "graph_seed", "stages")


def random_graph(s: Settings, seed: int) -> nx.Graph:
    if s.graph == "ws":
        return nx.connected_watts_strogatz_graph(s.nodes, s.k, s.p, seed=seed)
    if s.graph == "er":
        return nx.erdos_renyi_graph(s.nodes, s.p, seed=seed)
    return nx.barabasi_albert_graph(s.nodes, s.m, seed=seed)


def predecessors(graph: nx.Graph) -> dict[int, list[int]]:
    """The DAG: each edge points from the lower to the higher node index."""
    return {n: sorted(u for u in graph.neighbors(n) if u < n) for n in sorted(graph.nodes)}


def load_or_make_graphs(config: TrainConfig, s: Settings) -> list[dict[int, list[int]]]:
    """The run's saved graphs when there are some (resume, eval), else new ones, saved for later."""
    wanted = {key: asdict(s)[key] for key in GRAPH_KEYS}
    path = Path(config.run_dir) / "graphs.json" if config.run_dir else None
    if path is not None and path.is_file():
        try:
            saved = json.loads(path.read_text())
            stages = [{int(n): preds for n, preds in stage.items()} for stage in saved["stages"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{path} is not a RandWire graph file: {exc}") from None
        if saved.get("settings") != wanted:
            raise UserError(f"{path} holds graphs made with {saved.get('settings')}, but the settings are {wanted}")
        return stages
    stages = [predecessors(random_graph(s, s.graph_seed + i)) for i in range(s.stages)]
    if path is not None:
        path.write_text(json.dumps({"settings": wanted, "stages": stages}, indent=1))
    return stages


class SeparableConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),  # depthwise
            nn.Conv2d(cin, cout, 1, bias=False),  # pointwise
        )


class Node(nn.Module):
    def __init__(self, inputs: int, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(inputs))  # sigmoid(0) = 0.5 for every edge at the start
        layers = [nn.ReLU(), SeparableConv(cin, cout, stride), nn.BatchNorm2d(cout)]
        self.op = nn.Sequential(*layers, *([nn.Dropout(dropout)] if dropout else []))

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        gates = torch.sigmoid(self.weights)
        return self.op(sum(g * x for g, x in zip(gates, inputs, strict=True)))


class RandomGraphStage(nn.Module):
    def __init__(self, preds: dict[int, list[int]], cin: int, cout: int, node_dropout: float = 0.0) -> None:
        super().__init__()
        self.preds = preds
        has_successor = {p for ps in preds.values() for p in ps}
        self.outputs = [n for n in preds if n not in has_successor]
        self.nodes = nn.ModuleDict(
            {
                str(n): Node(max(1, len(ps)), cout if ps else cin, cout, 1 if ps else 2, node_dropout)
                for n, ps in preds.items()
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: dict[int, torch.Tensor] = {}
        for n, ps in self.preds.items():  # node indices are a topological order
            out[n] = self.nodes[str(n)]([out[p] for p in ps] if ps else [x])
        return torch.stack([out[n] for n in self.outputs]).mean(0)


class RandWireNN(nn.Module):
    def __init__(self, graphs: list[dict[int, list[int]]], channels: int, dropout: float, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels // 2, 3, padding=1, bias=False), nn.BatchNorm2d(channels // 2))
        widths = [channels // 2] + [channels * 2**i for i in range(len(graphs))]
        self.stages = nn.Sequential(*[RandomGraphStage(g, widths[i], widths[i + 1]) for i, g in enumerate(graphs)])
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(widths[-1], 1280, 1, bias=False),
            nn.BatchNorm2d(1280),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(1280, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def draw_stage(preds: dict[int, list[int]], title: str) -> np.ndarray:
    import matplotlib.pyplot as plt

    dag = nx.DiGraph([(p, n) for n, ps in preds.items() for p in ps])
    dag.add_nodes_from(preds)
    for n in sorted(preds):  # index order is a topological order
        dag.nodes[n]["depth"] = max((dag.nodes[p]["depth"] + 1 for p in preds[n]), default=0)
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = ["#4c9be8" if not preds[n] else "#f28e2b" if dag.out_degree(n) == 0 else "#bbbbbb" for n in dag.nodes]
    nx.draw_networkx(
        dag,
        nx.multipartite_layout(dag, subset_key="depth"),
        ax=ax,
        node_color=colors,
        node_size=220,
        font_size=7,
        arrowsize=8,
        width=0.6,
    )
    ax.set_title(f"{title}: {dag.number_of_nodes()} nodes, {dag.number_of_edges()} edges (blue in, orange out)")
    ax.axis("off")
    return figure_to_array(fig)


def draw_architecture(graphs: list[dict[int, list[int]]], s: Settings) -> np.ndarray:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(graphs), figsize=(5 * len(graphs), 4))
    for i, (ax, preds) in enumerate(zip(np.atleast_1d(axes), graphs, strict=True)):
        dag = nx.DiGraph([(p, n) for n, ps in preds.items() for p in ps])
        dag.add_nodes_from(preds)
        nx.draw_networkx(
            dag,
            nx.kamada_kawai_layout(dag),
            ax=ax,
            node_size=80,
            with_labels=False,
            arrowsize=6,
            width=0.5,
            node_color="#4c9be8",
        )
        ax.set_title(f"stage {i + 1}: {s.channels * 2**i} channels, stride 2")
        ax.axis("off")
    fig.suptitle(
        f"stem conv 3->{s.channels // 2} -> {len(graphs)} random {s.graph.upper()} stages "
        f"-> 1x1 conv 1280 -> pool -> dropout -> linear 10"
    )
    return figure_to_array(fig)


def build(config: TrainConfig, s: Settings) -> Parts:
    graphs = load_or_make_graphs(config, s)
    model = RandWireNN(graphs, s.channels, s.dropout)
    train, val, test = cifar10_splits(config.data_dir, config.seed, s.augment)

    def draw(run: RunView) -> None:
        for i, preds in enumerate(graphs):
            run.publish.image(f"graph_stage{i + 1}", draw_stage(preds, f"stage {i + 1}"))
        run.publish.image("architecture", draw_architecture(graphs, s))

    def handlers(run: RunView) -> None:
        if not run.resumed:  # the drawings of a resumed run are already there
            run.trainer.add_event_handler(Events.STARTED, lambda _: draw(run))

    return Parts(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.8, weight_decay=1e-4),
        loss_fn=nn.CrossEntropyLoss(),
        train=train,
        val=val,
        test=test,
        metrics=lambda: {"accuracy": Accuracy()},
        handlers=handlers,
    )


RECIPE = Recipe(
    summary="RandWireNN: random networkx graphs as conv stages (WS k=4 p=0.7 by default).",
    dataset="CIFAR-10 (--data-dir: python batches or train/<class>/ image folders)",
    build=build,
    settings=Settings,
    epochs=5,
    batch_size=64,
    lr=0.1,
)

if __name__ == "__main__":
    recipe_main(RECIPE)
