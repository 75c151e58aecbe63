"""Hand-written attributes of the ten digits: class metadata for zero-shot work."""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load_digit_attributes"]


def load_digit_attributes() -> pd.DataFrame:
    """Load a table of visual attributes of the digits 0-9.

    Each digit is described by 12 attributes of how it is usually written,
    graded 0 (absent), 0.5 (in some writers' style, or partly) or 1 (present);
    ``closed_loops`` counts enclosed regions (0 to 2). The table was written
    by hand from the shapes of the digits, not learnt from any images, so it
    is class metadata in the sense of zero-shot learning: it describes a
    class without showing an example. The definitions and the reasoning
    behind each entry are in the user guide (:ref:`zero_shot`).

    =====================  ==============================================
    ``closed_loops``       enclosed regions: 0 and 6 and 9 have one, 8
                           two, 4 one when written closed (0.5)
    ``loop_upper``         a closed loop in the upper half (0, 8, 9; 4 0.5)
    ``loop_lower``         a closed loop in the lower half (0, 6, 8)
    ``vertical_stroke``    a long straight vertical stroke (1, 4, 9; the
                           short upright of 5 and the stem of 7: 0.5)
    ``horizontal_top``     a horizontal bar at the top (5, 7)
    ``horizontal_middle``  a horizontal bar across the middle (4)
    ``horizontal_bottom``  a horizontal bar at the bottom (2; 1's base 0.5)
    ``diagonal_stroke``    a long slanted straight stroke (2, 7; 1's flag
                           and 4's left stroke 0.5)
    ``curve_open_left``    an arc opening to the left (2, 3, 5)
    ``curve_open_right``   an arc opening to the right (6)
    ``round_bottom``       the lowest part is a curve (0, 3, 5, 6, 8; 9 0.5)
    ``mirror_symmetric``   roughly left-right symmetric (0, 8; 1 0.5)
    =====================  ==============================================

    Returns
    -------
    DataFrame of shape (10, 12)
        Indexed by the digit (int, named ``"digit"``), float columns.

    Examples
    --------
    >>> from sklearn_protonet.datasets import load_digit_attributes
    >>> table = load_digit_attributes()
    >>> table.shape, table.loc[8, "closed_loops"]
    ((10, 12), np.float64(2.0))
    """
    source = resources.files(__package__) / "data" / "digit_attributes.csv"
    with source.open("r", encoding="utf-8") as handle:
        table = pd.read_csv(handle, index_col="digit")
    return table.astype(float)
