"""The Pareto-optimal points of two measures: the runs no other run beats on both at once."""

import numpy as np


def pareto_front(points: np.ndarray, higher_is_better: tuple[bool, bool]) -> np.ndarray:
    """Which points are Pareto-optimal.

    A point is dominated when another one is at least as good on both measures and better on
    one; the front is every point that is not. Equal points do not dominate each other, so all
    copies of an optimal point are on the front. Points with a non-finite coordinate are left
    out (neither on the front nor dominating anything).

    Args:
        points: ``[n, 2]`` the two measures of each point.
        higher_is_better: for each measure, whether larger values are better.

    Returns:
        ``[n]`` bool, True for the points on the front. ``O(n log n)``: sorted by the first
        measure (best first), a point is on the front iff it is the best of its equal-first-
        measure group on the second measure and strictly better there than every point before.
    """
    points = np.asarray(points, np.float64).reshape(-1, 2)
    signs = np.where(np.asarray(higher_is_better), 1.0, -1.0)
    gains = points * signs  # larger is better on both
    finite = np.isfinite(gains).all(axis=1)
    on_front = np.zeros(len(points), bool)
    index = np.flatnonzero(finite)
    if not len(index):
        return on_front
    x, y = gains[index, 0], gains[index, 1]
    order = np.lexsort((-y, -x))  # x descending, ties by y descending
    best_before = -np.inf  # the best y of the points with a strictly larger x
    start = 0
    while start < len(order):
        stop = start
        while stop < len(order) and x[order[stop]] == x[order[start]]:
            stop += 1
        group = order[start:stop]
        top = y[group[0]]
        if top > best_before:
            on_front[index[group[y[group] == top]]] = True
        best_before = max(best_before, top)
        start = stop
    return on_front
