"""A linear program kept between solves (HiGHS), so adding columns or changing bounds re-solves
from the last basis.

Column generation (``relaxation``, ``patterns``) solves one LP, adds a few columns and solves
again, many times per plan; a warm re-solve takes a few simplex iterations where a cold one
starts over (measured on the 2,000-pod bench case: 20-40 ms cold, under 1 ms warm). This is the
one module that speaks to HiGHS; everything else sees numpy arrays, and builds the constraint
matrix as ``SparseColumns`` (HiGHS's own compressed-column arrays, made with numpy: no SciPy).

Duals follow the usual sign for a minimisation: a row's dual is how much the optimum would rise
per unit more of its right-hand side (an equality's may have either sign; a binding ``<=`` row's
is at most 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from highspy._core import HighsLp, HighsModelStatus, MatrixFormat, _Highs, kHighsInf
from numpy.typing import ArrayLike

from extender.planner.problem import F64, I64

I32 = np.ndarray[Any, np.dtype[np.int32]]


@dataclass(frozen=True, slots=True)
class SparseColumns:
    """Columns of a sparse matrix in compressed form (CSC), as HiGHS takes them: column ``j``'s
    entries are rows ``index[start[j]:start[j + 1]]`` (ascending) with values ``value[...]``."""

    start: I32
    index: I32
    value: F64

    @classmethod
    def of(cls, values: ArrayLike, rows: ArrayLike, cols: ArrayLike, count: int) -> SparseColumns:
        """``count`` columns from entries (value, row, column) in any order: as SciPy's
        ``csc_matrix((values, (rows, cols)))`` makes them, entries at the same place are summed and
        zeros given are kept (HiGHS ignores them)."""
        value = np.asarray(values, dtype=np.float64).reshape(-1)
        row = np.asarray(rows, dtype=np.int64).reshape(-1)
        col = np.asarray(cols, dtype=np.int64).reshape(-1)
        order = np.lexsort((row, col))
        value, row, col = value[order], row[order], col[order]
        if row.size > 1:
            first = np.empty(row.size, dtype=np.bool_)
            first[0] = True
            np.not_equal(row[1:], row[:-1], out=first[1:])
            first[1:] |= col[1:] != col[:-1]
            if not first.all():
                at = np.flatnonzero(first)
                value, row, col = np.add.reduceat(value, at), row[at], col[at]
        start = np.zeros(count + 1, dtype=np.int32)
        np.cumsum(np.bincount(col, minlength=count), out=start[1:])
        return cls(start, row.astype(np.int32), value)


@dataclass(frozen=True, slots=True)
class Solution:
    x: F64
    objective: float
    row_duals: F64


def _finite(values: F64) -> F64:
    out: F64 = np.where(np.isposinf(values), kHighsInf, np.where(np.isneginf(values), -kHighsInf, values))
    return out


def _check(matrix: SparseColumns, columns: int, rows: int) -> None:
    """HiGHS refuses a matrix that does not fit its LP without saying why; this says it."""
    if matrix.start.size != columns + 1 or (matrix.index.size and int(matrix.index.max()) >= rows):
        raise ValueError(f"a matrix of {matrix.start.size - 1} columns with rows up to "
                         f"{int(matrix.index.max(initial=-1))} does not fit {columns} columns of {rows} rows")


class LinearProgram:
    """min cost·x subject to row_lower <= A x <= row_upper and col_lower <= x <= col_upper."""

    def __init__(
        self,
        cost: F64,
        matrix: SparseColumns,
        row_lower: F64,
        row_upper: F64,
        col_lower: F64,
        col_upper: F64,
    ) -> None:
        self._highs = _Highs()
        self._highs.setOptionValue("output_flag", False)
        self._highs.setOptionValue("threads", 1)
        # Primal simplex: after columns are added the last basis stays feasible, so a re-solve
        # only prices them in (the master over node fills: 520 iterations cold instead of 900,
        # 83 after adding patterns instead of 313).
        self._highs.setOptionValue("simplex_strategy", 4)
        _check(matrix, int(cost.size), int(row_lower.size))
        lp = HighsLp()
        lp.num_col_ = int(cost.size)
        lp.num_row_ = int(row_lower.size)
        lp.col_cost_ = np.ascontiguousarray(cost, dtype=np.float64)
        lp.col_lower_ = _finite(np.asarray(col_lower, dtype=np.float64))
        lp.col_upper_ = _finite(np.asarray(col_upper, dtype=np.float64))
        lp.row_lower_ = _finite(np.asarray(row_lower, dtype=np.float64))
        lp.row_upper_ = _finite(np.asarray(row_upper, dtype=np.float64))
        lp.a_matrix_.format_ = MatrixFormat.kColwise
        lp.a_matrix_.start_ = matrix.start
        lp.a_matrix_.index_ = matrix.index
        lp.a_matrix_.value_ = matrix.value
        self._highs.passModel(lp)
        self.columns = int(cost.size)
        self.rows = int(row_lower.size)

    def add_columns(self, cost: F64, matrix: SparseColumns, lower: F64, upper: F64) -> None:
        """Append columns (``matrix`` has one column per new variable, its rows among the existing)."""
        if cost.size == 0:
            return
        _check(matrix, int(cost.size), self.rows)
        self._highs.addCols(
            int(cost.size),
            np.ascontiguousarray(cost, dtype=np.float64),
            _finite(np.asarray(lower, dtype=np.float64)),
            _finite(np.asarray(upper, dtype=np.float64)),
            int(matrix.value.size),
            matrix.start[:-1],
            matrix.index,
            matrix.value,
        )
        self.columns += int(cost.size)

    def add_rows(self, lower: F64, upper: F64) -> None:
        """Append rows with no entries yet (columns added later may use them)."""
        if lower.size:
            empty = np.zeros(0, dtype=np.int32)
            self._highs.addRows(
                int(lower.size),
                _finite(np.asarray(lower, dtype=np.float64)),
                _finite(np.asarray(upper, dtype=np.float64)),
                0,
                np.zeros(lower.size, dtype=np.int32),
                empty,
                np.zeros(0, dtype=np.float64),
            )
            self.rows += int(lower.size)

    def set_column_bounds(self, columns: I64, lower: F64, upper: F64) -> None:
        if columns.size:
            self._highs.changeColsBounds(
                int(columns.size),
                columns.astype(np.int32),
                _finite(np.asarray(lower, dtype=np.float64)),
                _finite(np.asarray(upper, dtype=np.float64)),
            )

    def set_row_bounds(self, rows: I64, lower: F64, upper: F64) -> None:
        for row, low, high in zip(rows.tolist(), _finite(lower).tolist(), _finite(upper).tolist(), strict=True):
            self._highs.changeRowBounds(row, low, high)

    def solve(self) -> Solution | None:
        """The optimum from the last basis, or None if the LP has none (infeasible, unbounded)."""
        self._highs.run()
        if self._highs.getModelStatus() != HighsModelStatus.kOptimal:
            # A warm start that ends in numerical doubt: solve once more from scratch.
            self._highs.clearSolver()
            self._highs.run()
            if self._highs.getModelStatus() != HighsModelStatus.kOptimal:
                return None
        solution = self._highs.getSolution()
        return Solution(
            np.asarray(solution.col_value, dtype=np.float64),
            float(self._highs.getInfo().objective_function_value),
            np.asarray(solution.row_dual, dtype=np.float64),
        )
