import gzip

import pytest

from nmt.data.text import check_parallel, count_lines, read_lines, read_parallel
from nmt.errors import NmtError


def test_reads_gzip_crlf_bom_and_keeps_unicode_separators(tmp_path):
    raw = "\ufeffa\r\nb\u2028c\r\n\r\nlast".encode()
    plain, packed = tmp_path / "x.txt", tmp_path / "x.txt.gz"
    plain.write_bytes(raw)
    packed.write_bytes(gzip.compress(raw))
    expected = ["a", "b\u2028c", "", "last"]
    assert list(read_lines(plain)) == expected
    assert list(read_lines(packed)) == expected
    assert count_lines(plain) == count_lines(packed) == 4


def test_invalid_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine\nalso fine\nbroken \xff here\n")
    with pytest.raises(NmtError, match=r"bad.txt:3: invalid UTF-8"):
        list(read_lines(path))
    assert list(read_lines(path, errors="replace"))[2] == "broken \ufffd here"


def test_different_line_counts_name_both_files_and_counts(tmp_path):
    (tmp_path / "a.en").write_text("1\n2\n3\n")
    (tmp_path / "a.de").write_text("1\n2\n")
    with pytest.raises(NmtError, match=r"a.en has 3 lines, .*a.de has 2 lines"):
        check_parallel(tmp_path / "a.en", tmp_path / "a.de")
    with pytest.raises(NmtError, match="differ in length"):
        list(read_parallel(tmp_path / "a.en", tmp_path / "a.de"))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(NmtError, match="no such file"):
        list(read_lines(tmp_path / "nope.txt"))
