"""A linear program kept between solves (HiGHS), so adding columns or changing bounds re-solves
from the last basis.

Column generation (``relaxation``, ``patterns``) solves one LP, adds a few columns and solves
again, many times per plan; a warm re-solve takes a few simplex iterations where a cold one
starts over (measured on the 2,000-pod bench case: 20-40 ms cold, under 1 ms warm). This is the
one module that speaks to HiGHS; everything else sees numpy arrays.

Duals follow the usual sign for a minimisation: a row's dual is how much the optimum would rise
per unit more of its right-hand side (an equality's may have either sign; a binding ``<=`` row's
is at most 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from highspy._core import HighsLp, HighsModelStatus, MatrixFormat, _Highs, kHighsInf
from scipy.sparse import csc_matrix

from extender.planner.problem import F64, I64


@dataclass(frozen=True, slots=True)
class Solution:
    x: F64
    objective: float
    row_duals: F64


def _finite(values: F64) -> F64:
    out: F64 = np.where(np.isposinf(values), kHighsInf, np.where(np.isneginf(values), -kHighsInf, values))
    return out


class LinearProgram:
    """min cost·x subject to row_lower <= A x <= row_upper and col_lower <= x <= col_upper."""

    def __init__(
        self,
        cost: F64,
        matrix: csc_matrix,
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
        lp = HighsLp()
        lp.num_col_ = int(cost.size)
        lp.num_row_ = int(row_lower.size)
        lp.col_cost_ = np.ascontiguousarray(cost, dtype=np.float64)
        lp.col_lower_ = _finite(np.asarray(col_lower, dtype=np.float64))
        lp.col_upper_ = _finite(np.asarray(col_upper, dtype=np.float64))
        lp.row_lower_ = _finite(np.asarray(row_lower, dtype=np.float64))
        lp.row_upper_ = _finite(np.asarray(row_upper, dtype=np.float64))
        matrix = csc_matrix(matrix)
        lp.a_matrix_.format_ = MatrixFormat.kColwise
        lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
        lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
        lp.a_matrix_.value_ = matrix.data.astype(np.float64)
        self._highs.passModel(lp)
        self.columns = int(cost.size)
        self.rows = int(row_lower.size)

    def add_columns(self, cost: F64, matrix: csc_matrix, lower: F64, upper: F64) -> None:
        """Append columns (``matrix`` has one column per new variable, a row per existing row)."""
        if cost.size == 0:
            return
        matrix = csc_matrix(matrix)
        self._highs.addCols(
            int(cost.size),
            np.ascontiguousarray(cost, dtype=np.float64),
            _finite(np.asarray(lower, dtype=np.float64)),
            _finite(np.asarray(upper, dtype=np.float64)),
            int(matrix.nnz),
            matrix.indptr[:-1].astype(np.int32),
            matrix.indices.astype(np.int32),
            matrix.data.astype(np.float64),
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
