"""Searches the documents indexer.py writes, while it writes: the nearest embeddings to a
query text, by cosine similarity computed here from the blobs.

    python searcher.py /srv/index.duckdb [TEXT] [ROUNDS]
"""

import array
import math
import sys
import time

import litekeep_client
from indexer import embed


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)) or 1.0)


def main(db, text, rounds):
    conn = litekeep_client.connect(db, engine="duckdb")
    conn.execute("CREATE TABLE IF NOT EXISTS docs (id BIGINT PRIMARY KEY, body VARCHAR, embedding BLOB)")
    wanted = array.array("f", embed(text))
    for _ in range(rounds):
        rows = conn.query("SELECT id, body, embedding FROM docs")
        ranked = sorted(rows, key=lambda r: -cosine(wanted, array.array("f", r[2])))
        print(f"{len(rows)} documents; nearest to {text!r}: {[body for _, body, _ in ranked[:3]]}")
        time.sleep(0.5)
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "document 7",
         int(sys.argv[3]) if len(sys.argv) > 3 else 10)
