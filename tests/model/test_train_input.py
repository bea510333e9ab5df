"""`bet train`'s input: each mistake in a training or validation file is refused before any
training, with one line naming the file and the line of the row, as an editor numbers it."""
from __future__ import annotations

import json

import pytest

from model.data import (
    HOLDOUT,
    MIN_ROWS_TO_SPLIT,
    MIN_TRAIN_ROWS,
    Row,
    check_rows,
    holdout,
    read_rows,
    training_rows,
    write_rows,
)
from model.types import MAX_TEXT_CHARS

GOOD = ("text,label\na fine film,pos\na dull film,neg\na warm film,pos\na cold film,neg\n"
        "a bright film,pos\na grey film,neg\n")  # lines 1 (header) to 7; three rows of each label


def refused(call, *args) -> str:
    """The message of the ValueError (that class exactly) the call raises; one line."""
    with pytest.raises(ValueError) as info:
        call(*args)
    assert info.type is ValueError
    message = str(info.value)
    assert "\n" not in message
    return message


def write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def jsonl(*objects) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


# --- a good file reads as before, each row with its line


def test_a_good_csv_reads_the_same_rows_with_their_lines(tmp_path):
    rows = [Row("a fine, warm film", "pos"), Row('he said "no"', "neg"), Row("two\nlines", "pos"),
            Row("ünïcödé ✓", "neg"), Row("last", "pos")]
    write_rows(tmp_path / "rows.csv", rows)
    got = read_rows(tmp_path / "rows.csv")
    assert got == rows
    # the header is line 1; the third text spans lines 4 and 5
    assert [r.line for r in got] == [2, 3, 4, 6, 7]


def test_a_good_csv_with_bom_extra_columns_blank_lines_and_spaces_reads_as_before(tmp_path):
    path = write(tmp_path, "rows.csv", "\ufeffid,text,label\n1,  padded text  , pos \n\n2,other text,neg,\n")
    assert read_rows(path) == [Row("padded text", "pos"), Row("other text", "neg")]
    assert [r.line for r in read_rows(path)] == [2, 4]


def test_a_good_jsonl_reads_the_same_rows_with_their_lines(tmp_path):
    path = write(tmp_path, "rows.jsonl", jsonl({"text": " a\u2028b ", "label": "pos"}) + "\n"
                 + jsonl({"text": "c", "label": 1, "source": "x"}))
    got = read_rows(path)
    assert got == [Row("a\u2028b", "pos"), Row("c", "1")]
    assert [r.line for r in got] == [1, 3]


def test_the_line_is_not_part_of_a_rows_equality():
    assert Row("a", "b", 3) == Row("a", "b") and hash(Row("a", "b", 3)) == hash(Row("a", "b"))
    assert repr(Row("a", "b", 3)) == "Row(text='a', label='b')"


def test_good_files_pass_the_training_checks(tmp_path):
    data = write(tmp_path, "train.csv", GOOD)
    val = write(tmp_path, "val.jsonl", jsonl({"text": "a good film", "label": "pos"}))
    train, held = training_rows(data, val, seed=0)
    assert train == read_rows(data) and held == [Row("a good film", "pos")]


# --- no text or label column


def test_a_csv_without_a_label_column_is_refused(tmp_path):
    path = write(tmp_path, "train.csv", "text,category\na fine film,pos\n")
    assert refused(read_rows, path) == (f"{path}:1: the header must name 'text' and 'label' columns; "
                                        "it names ['text', 'category']")


def test_a_csv_without_a_text_column_is_refused_at_its_header_line(tmp_path):
    path = write(tmp_path, "train.csv", "\n\nsentence,label\na fine film,pos\n")
    assert refused(read_rows, path).startswith(f"{path}:3: the header must name 'text' and 'label'")


def test_a_jsonl_object_without_a_label_is_refused(tmp_path):
    path = write(tmp_path, "train.jsonl", jsonl({"text": "a", "label": "x"}, {"text": "b", "class": "y"}))
    assert refused(read_rows, path) == f"{path}:2: expected an object with 'text' and 'label'"


def test_an_empty_file_is_refused(tmp_path):
    path = write(tmp_path, "train.csv", "")
    assert refused(read_rows, path).startswith(f"{path}: empty")
    path = write(tmp_path, "header.csv", "text,label\n")
    assert refused(read_rows, path) == f"{path}: holds no rows of text and label"


# --- labels: one only, too few rows, unknown in validation


def test_one_label_only_is_refused(tmp_path):
    path = write(tmp_path, "train.csv", "text,label\na,pos\nb,pos\nc,pos\n")
    assert refused(training_rows, path, None, 0) == (f"{path}: every row has the label 'pos'; "
                                                     "training needs at least 2 labels")


def test_a_label_with_one_training_row_is_refused_naming_it(tmp_path):
    data = write(tmp_path, "train.csv", GOOD + "a loud film,meh\n")
    val = write(tmp_path, "val.csv", "text,label\nanother,pos\n")
    assert MIN_TRAIN_ROWS == 2
    assert refused(training_rows, data, val, 0) == (f"{data}:8: the label 'meh' has 1 row (line 8); "
                                                    "each label needs at least 2")


def test_a_validation_label_without_training_rows_is_refused(tmp_path):
    data = write(tmp_path, "train.csv", GOOD)
    val = write(tmp_path, "val.csv", "text,label\nanother,pos\nyet another,meh\n")
    assert refused(training_rows, data, val, 0) == (f"{val}:3: the label 'meh' is not among the training "
                                                    "labels ['neg', 'pos']")


def test_a_label_too_rare_to_split_is_refused_with_the_minimum(tmp_path):
    data = write(tmp_path, "train.csv", GOOD + "loud,meh\nquiet,pos\nsoft,meh\n")
    message = refused(training_rows, data, None, 0)
    assert message.startswith(f"{data}:8: the label 'meh' has 2 rows (lines 8, 10); each label needs at least 3 ")
    assert "without a validation file, 10% of each label's rows, at least 1, is held out" in message
    # with the third row it splits, and every label is on both sides
    data = write(tmp_path, "train.csv", GOOD + "loud,meh\nquiet,pos\nsoft,meh\nfaint,meh\n")
    train, val = training_rows(data, None, 0)
    assert {r.label for r in train} == {r.label for r in val} == {"pos", "neg", "meh"}


def test_holdout_keeps_every_label_on_both_sides_and_is_seeded():
    rows = [Row(f"t{i}", label) for label, n in (("a", 100), ("b", MIN_ROWS_TO_SPLIT), ("c", 15)) for i in range(n)]
    rows = [Row(f"{r.text}{r.label}", r.label, i + 2) for i, r in enumerate(rows)]
    check_rows(rows, None, "rows.csv")
    train, val = holdout(rows, seed=0)
    assert sorted(train + val, key=lambda r: r.line) == rows
    counts = {label: sum(r.label == label for r in val) for label in "abc"}
    assert counts == {"a": round(100 * HOLDOUT), "b": 1, "c": 2}
    assert all(sum(r.label == label for r in train) >= MIN_TRAIN_ROWS for label in "abc")
    assert holdout(rows, seed=0) == (train, val) and holdout(rows, seed=1) != (train, val)


# --- empty texts and labels


def test_an_empty_text_is_refused_naming_its_line(tmp_path):
    path = write(tmp_path, "train.csv", "text,label\na,pos\n   ,neg\n")
    assert refused(read_rows, path) == f"{path}:3: the text is empty"
    path = write(tmp_path, "train.jsonl", jsonl({"text": "a", "label": "pos"}, {"text": "\t", "label": "neg"}))
    assert refused(read_rows, path) == f"{path}:2: the text is empty"


def test_an_empty_label_is_refused_naming_its_line(tmp_path):
    path = write(tmp_path, "train.csv", 'text,label\na,pos\n"b\nc",\n')
    assert refused(read_rows, path) == f"{path}:3: the label is empty"


def test_a_text_or_label_that_is_not_a_string_is_refused(tmp_path):
    path = write(tmp_path, "train.jsonl", jsonl({"text": None, "label": "pos"}))
    assert refused(read_rows, path) == f"{path}:1: the text must be a string, not null"
    path = write(tmp_path, "train.jsonl", jsonl({"text": "a", "label": True}))
    assert refused(read_rows, path) == f"{path}:1: the label must be a string (or an integer), not true"


# --- duplicate texts


def test_a_text_twice_in_the_training_rows_is_refused_naming_both(tmp_path):
    path = write(tmp_path, "train.csv", GOOD + "  a dull film ,pos\n")
    assert refused(training_rows, path, None, 0) == (f"{path}:8: the same text as line 3; "
                                                     "each text may be a training row once")


def test_a_validation_text_that_is_a_training_text_is_refused_naming_both(tmp_path):
    data = write(tmp_path, "train.csv", GOOD)
    val = write(tmp_path, "val.jsonl", jsonl({"text": "new", "label": "pos"}, {"text": "a cold film", "label": "neg"}))
    assert refused(training_rows, data, val, 0) == (f"{val}:2: the same text as {data}:5; "
                                                    "a validation text must not also be a training text")


# --- texts over the limit


def test_a_text_over_the_serving_limit_is_refused(tmp_path):
    from server.core import schemas

    assert schemas.MAX_TEXT_CHARS is MAX_TEXT_CHARS == 10_000  # one definition
    data = write(tmp_path, "train.csv", GOOD + "x" * MAX_TEXT_CHARS + ",pos\n")
    training_rows(data, None, 0)  # at the limit: accepted
    val = write(tmp_path, "val.csv", "text,label\nfine,pos\n" + "y" * (MAX_TEXT_CHARS + 1) + ",neg\n")
    assert refused(training_rows, data, val, 0) == (f"{val}:3: the text has 10,001 characters, over the limit of "
                                                    "10,000 (the most bet serve accepts)")


# --- unreadable encoding, malformed CSV and JSON lines


def test_a_file_that_is_not_utf8_is_refused_at_the_line_where_decoding_fails(tmp_path):
    path = write(tmp_path, "train.csv", "text,label\na,pos\ncaf\u00e9,neg\n".encode("latin-1"))
    assert refused(read_rows, path) == (f"{path}:3: not UTF-8 text: byte 0xe9 at column 4; "
                                        "save the file as UTF-8")
    path = write(tmp_path, "train.jsonl", jsonl({"text": "a", "label": "pos"}).encode("utf-16"))
    assert refused(read_rows, path).startswith(f"{path}:1: not UTF-8 text (it looks like UTF-16): ")


def test_a_quote_that_never_closes_is_refused_where_it_opens(tmp_path):
    path = write(tmp_path, "train.csv", 'text,label\na,pos\n"b,neg\nc,pos\n')
    assert refused(read_rows, path) == f"{path}:3: malformed CSV: a quoted field that opens here never closes"


def test_malformed_csv_records_are_refused(tmp_path):
    path = write(tmp_path, "train.csv", 'text,label\n"a"b,pos\n')
    assert refused(read_rows, path) == f"{path}:2: malformed CSV: ',' expected after '\"'"
    path = write(tmp_path, "train.csv", "text,label\na fine film,pos\nfine, but dull,neg\n")
    assert refused(read_rows, path) == (f"{path}:3: 3 fields where the header has 2 "
                                        "(quote a text that holds a comma)")
    path = write(tmp_path, "train.csv", "text,label\na fine film,pos\njust a text\n")
    assert refused(read_rows, path) == f"{path}:3: 1 field where the header has 2: no label"


def test_a_malformed_json_line_is_refused(tmp_path):
    path = write(tmp_path, "train.jsonl", jsonl({"text": "a", "label": "pos"}) + '{"text": "b", "label": neg}\n')
    assert refused(read_rows, path) == f"{path}:2: not a JSON line: Expecting value at column 24"


def test_bet_train_refuses_bad_rows_before_any_work_and_names_a_missing_extra(tmp_path, monkeypatch, capsys):
    """Through the command itself: a duplicate text ends the run with exit 2 and one line on
    stderr, before the background is read; without the training extra's readers, the
    default background is refused with the way out."""
    import argparse

    from model import background
    from model.cli import add_train

    parser = argparse.ArgumentParser()
    add_train(parser.add_subparsers())
    rows = "text,label\n" + "".join(f"text number {i},{'ab'[i % 2]}\n" for i in range(20))
    (tmp_path / "good.csv").write_text(rows, encoding="utf-8")
    (tmp_path / "dup.csv").write_text(rows + "text number 3,b\n", encoding="utf-8")

    def unread(*_args, **_kwargs):
        raise AssertionError("the background was read")

    monkeypatch.setattr(background, "background_text", unread)
    args = parser.parse_args(["train", "--data", str(tmp_path / "dup.csv"), "--out", str(tmp_path / "m")])
    assert args.run(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "dup.csv:22" in err and "line 5" in err

    def missing(*_args, **_kwargs):
        raise ImportError("No module named 'wordfreq'")

    monkeypatch.setattr(background, "background_text", missing)
    args = parser.parse_args(["train", "--data", str(tmp_path / "good.csv"), "--out", str(tmp_path / "m")])
    assert args.run(args) == 2
    err = capsys.readouterr().err
    assert "pip install -e '.[train]'" in err and "--background none" in err
    assert not (tmp_path / "m").exists()


def test_bet_train_refuses_rated_background_text_for_a_task_that_is_not_polarity(tmp_path, monkeypatch, capsys):
    import argparse

    from model import background
    from model.cli import add_train

    parser = argparse.ArgumentParser()
    add_train(parser.add_subparsers())
    rows = "text,label\n" + "".join(f"text number {i},{'ab'[i % 2]}\n" for i in range(20))
    (tmp_path / "good.csv").write_text(rows, encoding="utf-8")

    def unread(*_args, **_kwargs):
        raise AssertionError("the background was read")

    monkeypatch.setattr(background, "background_text", unread)
    for extra, message in ((["--background-ratings", "on"], "needs the labels 'negative' and 'positive'"),
                           (["--background-ratings", "on", "--background", "none"], "needs the 'general' background")):
        args = parser.parse_args(["train", "--data", str(tmp_path / "good.csv"), "--out", str(tmp_path / "m"), *extra])
        assert args.run(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--data", "x.csv", "--out", "m", "--background-ratings", "yes"])
    assert not (tmp_path / "m").exists()
