"""Shared fixtures."""

import pytest

from speck_mtt.data.bundled import unpack


@pytest.fixture(scope="session")
def real800_dir(tmp_path_factory):
    """A data dir with nmnist-real800 unpacked once for the whole session (a few seconds)."""
    data_dir = tmp_path_factory.mktemp("real800")
    unpack("nmnist-real800", data_dir)
    return data_dir
