"""Reliability masks on a known occlusion, derived by hand from Ruder et al.'s criteria."""

import numpy as np

from nstjax.video.reliability import exclusive, reliability


def test_a_moving_square_disoccludes_its_trail_and_marks_its_edges():
    h, w = 24, 32
    # A square at columns 10..17 (rows 8..15) in frame 0 moves 4 px right in frame 1.
    forward = np.zeros((h, w, 2), np.float32)  # frame 0 -> frame 1
    forward[8:16, 10:18, 0] = 4.0
    backward = np.zeros((h, w, 2), np.float32)  # frame 1 -> frame 0
    backward[8:16, 14:22, 0] = -4.0
    got = reliability(backward, forward, smooth=False)

    expected = np.ones((h, w), np.float32)
    # Disoccluded: frame 1's columns 10..13 were under the square; the backward flow there is 0
    # and the forward flow at the same place is 4: |4 + 0|^2 = 16 > 0.01 * 16 + 0.5.
    expected[8:16, 10:14] = 0
    # Motion boundaries: central differences of the backward flow are -2 (or 2) on both sides of
    # each jump of the square's edge: 4 > 0.01 |w|^2 + 0.002 with |w| <= 4.
    expected[8:16, [13, 14, 21, 22]] = 0
    expected[[7, 8, 15, 16], 14:22] = 0
    np.testing.assert_array_equal(got, expected)


def test_flow_leaving_the_frame_is_unreliable():
    flow = np.zeros((6, 8, 2), np.float32)
    flow[..., 0] = 3.0  # frame 0 -> 1: everything 3 px left of where it lands
    back = -flow
    got = reliability(flow, back, smooth=False)
    expected = np.ones((6, 8), np.float32)
    expected[:, 5:] = 0  # x + 3 > 7
    np.testing.assert_array_equal(got, expected)


def test_smoothing_spreads_disocclusion_outwards_and_stays_in_range():
    forward = np.zeros((24, 32, 2), np.float32)
    forward[8:16, 10:18, 0] = 4.0
    backward = np.zeros((24, 32, 2), np.float32)
    backward[8:16, 14:22, 0] = -4.0
    got = reliability(backward, forward)
    assert got.min() == 0.0 and got.max() == 1.0
    assert got[12, 9] < 1.0  # beside the disocclusion, pulled down by its -1
    assert got[2, 2] == 1.0


def test_exclusive_long_term_weights_by_hand():
    c = np.array([[1.0, 0.0, 0.5], [1.0, 1.0, 0.5], [1.0, 1.0, 1.0]], np.float32)[..., None]
    got = exclusive(c)[..., 0]
    expected = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    np.testing.assert_allclose(got, expected)
