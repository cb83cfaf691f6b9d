"""Every export format is one registry entry that writes a readable file."""

import csv
import zipfile

import pytest

from llmadmin.exports import atomic_write
from llmadmin.exports.formats import FORMATS, WriteJob


@pytest.mark.parametrize("key", sorted(FORMATS))
def test_each_format_writes_its_rows(tmp_path, key):
    target = tmp_path / f"out.{key}"
    headers = ["ID", "Prompt", "Output"]
    rows = iter([(1, "p1", "o1"), (2, "p2", "o2")])
    seen = {}

    def write(path):
        job = WriteJob(path, headers, rows, None, 1000, (("Prompt", "prompts"),))
        seen["result"] = FORMATS[key].write(job)

    size, _md5 = atomic_write(str(target), write)
    assert seen["result"].rows == 2 and size == target.stat().st_size > 0
    if key == "csv":
        with open(target, encoding="utf-8-sig", newline="") as fh:
            assert list(csv.reader(fh))[1][:2] == ["1", "p1"]
    else:  # xlsx and zip are both ZIP containers
        assert zipfile.is_zipfile(target)
    assert FORMATS[key].mimetype
