"""Indexes documents into a DuckDB file through litekeep: one row per document, its embedding
a blob. Run it while searcher.py searches the same file.

    python indexer.py /srv/index.duckdb [COUNT]
"""

import array
import hashlib
import sys

import litekeep_client


def embed(text):
    """A stand-in for a real model: 8 floats from the text's hash, as 32 bytes."""
    digest = hashlib.sha256(text.encode()).digest()
    return array.array("f", (b / 255 for b in digest[:8])).tobytes()


def insert(conn, doc_id, body):
    row = [doc_id, body, embed(body)]
    try:
        conn.execute("INSERT INTO docs VALUES (?, ?, ?)", row)
    except litekeep_client.OutcomeUnknown:
        # The server died after the insert was sent and no server could tell whether it was
        # applied: look, and insert it if it is not there.
        if not conn.query("SELECT 1 FROM docs WHERE id = ?", [doc_id]):
            conn.execute("INSERT INTO docs VALUES (?, ?, ?)", row)


def main(db, count):
    # Starts `litekeep serve` for the file if no process serves it yet.
    conn = litekeep_client.connect(db, engine="duckdb")
    conn.execute("CREATE TABLE IF NOT EXISTS docs (id BIGINT PRIMARY KEY, body VARCHAR, embedding BLOB)")
    ((first,),) = conn.query("SELECT coalesce(max(id) + 1, 0) FROM docs")
    for doc_id in range(first, first + count):
        insert(conn, doc_id, f"document {doc_id}")
    print(f"indexed documents {first} to {first + count - 1}")
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
