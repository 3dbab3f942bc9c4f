"""LangChain over vecdb: a VecDBVectorStore with a local embedding, a filtered similarity
search, maximal marginal relevance and a retriever. Offline and deterministic (the embedding
is examples/local_embedding.py, a hashed bag of words: no model, no network).

    python examples/langchain_example.py [DATABASE_DIR]    # default: a temporary directory

Needs langchain-core (``pip install 'vecdb[langchain]'``). The database it writes is an
ordinary vecdb directory: ``vecdb ls DATABASE_DIR`` shows the "articles" collection.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from local_embedding import embed

from vecdb.integrations.langchain import VecDBVectorStore


class LocalEmbeddings(Embeddings):
    """LangChain's Embeddings interface over local_embedding.embed (unit rows, dim 256)."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return embed(texts, self.dim).tolist()

    def embed_query(self, text: str) -> list[float]:
        return embed([text], self.dim)[0].tolist()


ARTICLES = [
    ("river-2019", "The river flooded the valley after days of heavy rain", "weather", 2019),
    ("river-2022", "Flood warnings for river towns as heavy rain continues", "weather", 2022),
    ("river-2023", "Rivers flooding the old town again: heavy rain and flood warnings",
     "weather", 2023),
    ("bread-2022", "A simple sourdough bread recipe with a long cold proof", "cooking", 2022),
    ("bread-2024", "Baking bread at home: flour, water, salt and a hot oven", "cooking", 2024),
    ("soup-2021", "A warming tomato soup recipe for rainy days", "cooking", 2021),
    ("rust-2024", "Async Rust with tokio: tasks, channels and the runtime", "programming", 2024),
    ("python-2023", "Python type hints and dataclasses for cleaner code", "programming", 2023),
]


def show(doc: Document) -> str:
    return f"{doc.id} [{doc.metadata['topic']} {doc.metadata['year']}] {doc.page_content}"


def main(path: Path) -> None:
    with VecDBVectorStore(LocalEmbeddings(), path=path, collection_name="articles") as store:
        ids = store.add_documents([
            Document(id=key, page_content=text, metadata={"topic": topic, "year": year})
            for key, text, topic, year in ARTICLES])
        print(f"added {len(ids)} documents")

        print("filtered search: 'flooding rivers' where year >= 2021")
        for doc, distance in store.similarity_search_with_score(
                "flooding rivers", k=3, filter={"year": {"$gte": 2021}}):
            print(f"  {distance:.4f}  {show(doc)}")

        query = "heavy rain and river flood warnings"
        plain = store.similarity_search(query, k=3)
        print("similarity:", ", ".join(d.id for d in plain))
        diverse = store.max_marginal_relevance_search(query, k=3, fetch_k=8, lambda_mult=0.3)
        print("mmr:", ", ".join(d.id for d in diverse))

        retriever = store.as_retriever(search_kwargs={"k": 2, "filter": {"topic": "cooking"}})
        print("retriever:", ", ".join(d.id for d in retriever.invoke("how to bake bread")))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "langchain.vdb")
