"""A user's own table (CSV, TSV, whitespace columns) as model inputs: read with pandas, every column prepared
from the training rows only (standardized numbers, missing values imputed and flagged, categories as
indices), and the preparation kept as JSON with the run so ``predict`` and ``export`` apply the same."""

from __future__ import annotations

import csv
import json
import logging
import shlex
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ignite_lab.core.errors import UserError

log = logging.getLogger(__name__)
MISSING = ("", "?", "NA", "N/A", "NaN", "nan", "null", "None", "-")
TRAINING = "the training rows"  # where a fitted value came from, in messages
SUFFIXES = (".csv", ".tsv", ".txt", ".data", ".tab")


def read_table(path: Path, delimiter: str = "", header: str = "auto", encoding: str = "utf-8"):
    """A table file as a pandas DataFrame of strings-or-numbers. ``delimiter``: "" sniffs it (comma, tab,
    semicolon, pipe; runs of spaces when none fits); "whitespace" or one character. ``header``: "auto"
    (csv.Sniffer's guess), "first" or "none" (columns are then named 0, 1, 2...)."""
    import pandas as pd

    try:
        sample = path.read_bytes()[:65536].decode(encoding)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not {encoding} text (byte {exc.start}): pass --set encoding=NAME") from None
    if not sample.strip():
        raise UserError(f"{path} is empty")
    sep = sniff_delimiter(sample) if not delimiter else delimiter
    has_header = sniff_header(sample, sep) if header == "auto" else header == "first"
    kwargs = {"sep": r"\s+" if sep in ("whitespace", r"\s+") else sep, "header": 0 if has_header else None}
    try:
        with warnings.catch_warnings():  # a first row longer than the header: pandas would drop its extra fields
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path, encoding=encoding, na_values=list(MISSING), keep_default_na=True, index_col=False, **kwargs
            )
    except pd.errors.ParserWarning:
        raise UserError(f"{path}, line {longer_line(sample, kwargs['sep'])}: more fields than the header") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not {encoding} text (byte {exc.start}): pass --set encoding=NAME") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise UserError(f"{path}: {str(exc).strip()} (set --set delimiter=... if it was guessed wrong)") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise UserError(f"{path} has a header and no rows")
    for column in frame.columns:
        if not is_numeric(frame[column]):
            check_mostly_numbers(frame[column], column, str(path))
    return frame


def longer_line(sample: str, sep: str) -> int | str:
    """The first line of ``sample`` with more fields than its first line (pandas' ParserWarning says none)."""
    lines = sample.replace("\r\n", "\n").split("\n")
    split = (lambda line: line.split()) if sep == r"\s+" else (lambda line: next(csv.reader([line], delimiter=sep)))
    width = len(split(lines[0]))
    return next((i for i, line in enumerate(lines[1:], 2) if line.strip() and len(split(line)) > width), "?")


def sniff_header(sample: str, sep: str) -> bool:
    """csv.Sniffer's guess; where it cannot tell (whitespace columns, rows of unequal length), a first line
    without digits is a header."""
    if sep != r"\s+":
        try:
            return csv.Sniffer().has_header(sample)
        except csv.Error:
            pass
    return not any(ch.isdigit() for ch in sample.split("\n", 1)[0])


def sniff_delimiter(sample: str) -> str:
    """csv.Sniffer's pick among , tab ; | or runs of whitespace: whichever splits the first lines into the most
    columns, the same number on every line (UCI files mix spaces and a tab before a quoted name)."""
    rows = sample.replace("\r\n", "\n").split("\n")  # CSV's line ends only, not every Unicode line break
    lines = [line for line in rows[:50] if line.strip()][:-1] or rows[:1]
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
    except csv.Error:
        sniffed = None

    def columns(sep: str | None) -> int:
        if sep is None:
            return 0
        try:
            counts = {
                len(shlex.split(line)) if sep == "ws" else len(next(csv.reader([line], delimiter=sep)))
                for line in lines
            }
        except ValueError:  # an unbalanced quote
            return 0
        return counts.pop() if len(counts) == 1 else 0

    if sniffed and columns(sniffed) >= columns("ws"):
        return sniffed
    if columns("ws") > 1:
        return r"\s+"
    # no separator splits every line alike: the header's most frequent one, so that pandas names the row
    # whose field count differs (a ragged row), rather than one column that holds whole lines
    header = lines[0] if lines else ""
    counts = {sep: header.count(sep) for sep in ",\t;|"}
    best = max(counts, key=counts.get)
    return best if counts[best] else r"\s+"


@dataclass
class TablePrep:
    """How raw columns become model inputs, fitted on the training rows."""

    target: str
    task: str  # "regression" or "classification"
    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)  # column -> (mean, std)
    flagged: list[str] = field(default_factory=list)  # numeric columns with missing values: a 0/1 column each
    categorical: dict[str, list[str]] = field(default_factory=dict)  # column -> levels (index 0: unknown/missing)
    classes: list[str] = field(default_factory=list)  # classification targets, in index order
    target_scale: tuple[float, float] = (0.0, 1.0)  # regression: (mean, std) of the training targets

    @classmethod
    def fit(cls, frame, target: str, task: str, max_levels: int) -> TablePrep:
        """Fitted on ``frame``, the training rows; a table nothing can be learnt from is refused in one line."""
        if target not in frame.columns:
            raise UserError(
                f"--set target={target}: no such column (the columns: {', '.join(map(repr, frame.columns))})"
            )
        prep = cls(target=target, task=task)
        for column in frame.columns:
            if column != target:
                prep.fit_column(column, frame[column], max_levels)
        if not prep.numeric and not prep.categorical:
            others = ", ".join(repr(str(c)) for c in frame.columns if c != target)
            raise UserError(
                f"the table has nothing to learn from besides the target {target!r}"
                + (f": {others} left out (--set max_levels= keeps more distinct texts)" if others else "")
            )
        prep.fit_target(frame[target])
        return prep

    def fit_column(self, column: str, values, max_levels: int) -> None:
        if is_numeric(values):
            numbers = within(to_numbers(values, column, TRAINING), column, TRAINING, FEATURE_LIMIT)
            self.numeric[column] = (float(numbers.mean()) if numbers.notna().any() else 0.0, spread(numbers))
            if numbers.isna().any():
                self.flagged.append(column)
            whole = numbers.dropna()
            if 1 < whole.nunique() <= WHOLE_LEVELS and (whole % 1 == 0).all():  # cylinders, origin codes...
                self.categorical[column] = sorted({level(v) for v in whole}, key=lambda s: float(s))
            return
        levels = sorted({level(v) for v in values.dropna()})
        if len(levels) > max_levels:
            log.info("column %r left out: %d distinct values (an identifier?) over max_levels", column, len(levels))
            return
        self.categorical[column] = levels

    def fit_target(self, values) -> None:
        if not values.notna().any():
            raise UserError(f"the target {self.target!r} has no values in the training rows")
        if self.task == "classification":
            self.classes = sorted(values.dropna().astype(str).unique())
            if len(self.classes) < 2:
                raise UserError(
                    f"the target {self.target!r} has one class in the training rows ({self.classes[0]!r}): "
                    "a classifier needs at least two"
                )
            return
        numbers = within(to_numbers(values, self.target, TRAINING), self.target, TRAINING, TARGET_LIMIT)
        self.target_scale = (float(numbers.mean()), spread(numbers))

    def inputs(self, frame, where: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(numbers, category indices) of ``frame``'s rows; a column the model needs and ``where`` lacks is named."""
        missing = [c for c in [*self.numeric, *self.categorical] if c not in frame.columns]
        if missing:
            raise UserError(f"{where} has no column {', '.join(map(repr, missing))} (the model was trained with it)")
        parts = []
        for column, (mean, std) in self.numeric.items():
            parts.append(standardized(frame[column], column, where, mean, std))
        for column in self.flagged:
            parts.append(to_numbers(frame[column], column, where).isna().to_numpy(dtype=float))
        rows = len(frame)
        numbers = np.column_stack(parts) if parts else np.zeros((rows, 0))
        codes = []
        for column, levels in self.categorical.items():
            index = {name: i + 1 for i, name in enumerate(levels)}  # 0: a level the training rows lack, or none
            codes.append(frame[column].map(lambda v, index=index: index.get(level(v), 0) if v == v else 0).to_numpy())
        categories = np.column_stack(codes) if codes else np.zeros((rows, 0))
        return torch.tensor(numbers, dtype=torch.float32), torch.tensor(categories, dtype=torch.long)

    def targets(self, frame, where: str) -> torch.Tensor:
        values = frame[self.target]
        if values.isna().any():
            row = values.index[int(values.isna().to_numpy().argmax())]
            raise UserError(f"{where}, row {row + 1}: the target {self.target!r} is missing")
        if self.task == "classification":
            index = {c: i for i, c in enumerate(self.classes)}
            unknown = sorted(set(values.astype(str)) - set(index))
            if unknown:
                raise UserError(f"{where}: target classes {unknown[:5]} do not occur in the training rows")
            return torch.tensor([index[v] for v in values.astype(str)])
        numbers = within(to_numbers(values, self.target, where), self.target, where, TARGET_LIMIT)
        return torch.tensor(numbers.to_numpy(), dtype=torch.float32)

    def example(self, rows: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        """Made-up model inputs of ``rows`` rows: standard-normal numbers and random levels of each category."""
        generator = torch.Generator().manual_seed(0)
        numbers = torch.randn(rows, self.width, generator=generator)
        codes = [torch.randint(0, len(kept) + 1, (rows,), generator=generator) for kept in self.categorical.values()]
        return numbers, torch.stack(codes, 1) if codes else torch.zeros(rows, 0, dtype=torch.long)

    @property
    def width(self) -> int:
        return len(self.numeric) + len(self.flagged)

    def to_json(self) -> str:
        return json.dumps({"kind": "table", **asdict(self)}, indent=1)

    @classmethod
    def from_json(cls, text: str, where: Path) -> TablePrep:
        try:
            raw = json.loads(text)
            raw.pop("kind", None)
            prep = cls(**raw)
            prep.numeric = {k: tuple(v) for k, v in prep.numeric.items()}
            prep.target_scale = tuple(prep.target_scale)
        except (ValueError, TypeError) as exc:
            raise UserError(f"{where} is not a table preparation ({exc})") from None
        return prep


WHOLE_LEVELS = 10  # a whole-number column of at most this many values is also a category (each value its own)


def level(value: object) -> str:
    """A category's name: whole numbers without their ".0" (3 and 3.0 read from two files are one level)."""
    if (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and float(value).is_integer()
    ):
        return str(int(value))
    return str(value)


def is_numeric(values) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def to_numbers(values, column: str, where: str):
    """A column as floats; a cell that is not a number names its row (its place in the file's rows)."""
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    bad = (numbers.isna() & values.notna()) | numbers.isin([float("inf"), float("-inf")])
    if bad.any():
        raise not_a_number(values, bad, column, where)
    return numbers


FLOAT32_MAX = float(np.finfo(np.float32).max)
FEATURE_LIMIT = 1e150  # beyond it the variance of a column overflows float64 (1.8e308)
TARGET_LIMIT = 1e18  # a regression target's squared error must fit the model's float32 (3.4e38)


def within(numbers, column: str, where: str, limit: float):
    """``numbers`` if none is larger than ``limit``, else a UserError naming the first row that is:
    such a value would become infinity in the model, and every loss NaN."""
    beyond = numbers.abs() > limit
    if beyond.any():
        row, value = first(numbers, beyond)
        raise UserError(
            f"{where}, row {row}, column {column!r}: {value:g} is too large "
            f"to train on ({limit:g} at most: rescale the column, e.g. to other units)"
        )
    return numbers


def standardized(values, column: str, where: str, mean: float, std: float) -> np.ndarray:
    """(values - mean) / std, a missing value as the mean; a value too far out for float32 is named."""
    numbers = to_numbers(values, column, where)
    z = (numbers.fillna(mean) - mean) / std
    far = z.abs() > FLOAT32_MAX / 2
    if far.any():
        row, value = first(numbers, far)
        raise UserError(
            f"{where}, row {row}, column {column!r}: {value:g} is too far "
            f"from the training rows' values (mean {mean:g}, spread {std:g}) for the model's float32 arithmetic"
        )
    return z.to_numpy()


def spread(numbers) -> float:
    """The standard deviation to divide by: 1 where there is none (one value, or all equal)."""
    std = float(numbers.std()) if numbers.notna().sum() > 1 else 0.0
    return std if std > 0 else 1.0


def first(values, mask) -> tuple[object, object]:
    """(row, cell) of the first of ``values`` where ``mask`` holds; the row as the file counts them (1: the first)."""
    position = int(mask.to_numpy().argmax())
    row = values.index[position]
    return (row + 1 if isinstance(row, int) else row), values.iloc[position]


def check_mostly_numbers(values, column: str, where: str) -> None:
    """A column of numbers but for a few cells is a typo, not a text column: name the first stray cell."""
    import pandas as pd

    present = values.dropna()
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.notna().sum() >= 4 and numbers.notna().mean() >= 0.8 and numbers.isna().any():
        raise not_a_number(present, numbers.isna(), column, where)


def not_a_number(values, bad, column: str, where: str) -> UserError:
    row, cell = first(values, bad)
    shown = repr(cell) if isinstance(cell, str) else cell  # inf, not np.float64(inf)
    return UserError(
        f"{where}, row {row}, column {column!r}: {shown} is not a finite number "
        "(fix the cell, or leave it empty for a missing value)"
    )


def infer_task(values, given: str) -> str:
    """Classification for text or few whole-number targets, regression otherwise (said in the log)."""
    if given != "auto":
        return given
    if not is_numeric(values):
        task = "classification"
    else:
        whole = values.dropna().map(lambda v: float(v).is_integer()).all()
        task = "classification" if whole and values.nunique() <= 20 else "regression"
    log.info("task: %s (inferred from the target's values; set --set task=... to choose)", task)
    return task
