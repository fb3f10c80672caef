"""The papers' tables as printed: shapes, a few values checked against the PDFs' text, bad input."""

from __future__ import annotations

import pytest

from reactlib.metrics import paper


def test_reactdiff_tables():
    assert paper.table(1).shape == (len(paper.TABLE_1), len(paper.COLUMNS))
    assert paper.table(1).loc["ReactDiff", "FRCorr"] == 0.515
    with pytest.raises(ValueError, match="1, 8 and 9"):
        paper.table(2)


def test_pflposnet_tables():
    t1 = paper.pflposnet_table(1)
    assert t1.shape == (8, 6)
    assert t1.loc["PerFRDiff + PosNet", "dynamic_degree"] == 6.0976
    assert t1.loc["Trans-VAE", "motion_smoothness"] == 99.0939
    t4 = paper.pflposnet_table(4)
    assert t4.shape == (4, 5)
    assert t4.loc["ReactFace + PosNet", "FRSyn"] == 45.74
    t3 = paper.pflposnet_table(3)
    assert t3.loc["PFL crop + PosNet", "dynamic_degree"] == 6.0976
    assert paper.pflposnet_table(2).loc["Float crop", "imaging_quality"] == 40.7967
    with pytest.raises(ValueError, match="1 to 4"):
        paper.pflposnet_table(5)
