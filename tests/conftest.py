import numpy as np
import pytest
from hypothesis import settings

from tests.cases import CASE_IDS, CASES

pytest.register_assert_rewrite("tests.nn._twins")  # helper asserts report their values

settings.register_profile("refvpng", deadline=None, max_examples=25, derandomize=True)
settings.load_profile("refvpng")


@pytest.fixture(params=CASES, ids=CASE_IDS)
def case(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
