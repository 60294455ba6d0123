"""TF2AIF_RECIPE_PATH is split like PATH: on os.pathsep, empty entries skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.pipeline.recipes import recipe_dirs
from tf2aif.resources import data_dir


def test_recipe_path_entries_follow_the_shipped_recipes_in_order():
    value = os.pathsep.join(["/one", "", "/two/three"])
    assert recipe_dirs({"TF2AIF_RECIPE_PATH": value}) == (
        data_dir("recipes"),
        Path("/one"),
        Path("/two/three"),
    )


def test_no_recipe_path_means_only_the_shipped_recipes():
    assert recipe_dirs({}) == (data_dir("recipes"),)


folder = st.text(st.sampled_from("abc/_-."), min_size=1, max_size=8)


@pytest.mark.fuzz
@given(folders=st.lists(folder, max_size=5))
def test_every_folder_of_the_path_comes_back_once_in_order(folders):
    found = recipe_dirs({"TF2AIF_RECIPE_PATH": os.pathsep.join(folders)})
    assert found == (data_dir("recipes"), *(Path(f) for f in folders))
