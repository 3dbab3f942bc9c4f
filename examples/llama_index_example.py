"""LlamaIndex on vecdb: a VectorStoreIndex stored in a vecdb collection, queried with a
metadata filter, offline (a local hashed embedding, no LLM, no tokenizer or model download).

    python examples/llama_index_example.py [DATABASE_DIR]

Builds the index over a few short notes (pre-built TextNodes, so no node parser runs, and a
whitespace tokenizer, so no tiktoken encoding is loaded), asks
a question with and without a filter on the notes' year, deletes one source document and
asks again, printing the retrieved nodes. Without DATABASE_DIR it works in a temporary
directory. Needs ``pip install 'vecdb[llama-index]'``.
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from llama_index.core import StorageContext, VectorStoreIndex, set_global_tokenizer
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters
from local_embedding import embed

from vecdb.integrations.llama_index import VecDBVectorStore

NOTES = [  # (node id, source document, year, text)
    ("rivers", "geography", 2019, "Rivers flood the valley every spring when the snow melts."),
    ("glaciers", "geography", 2022, "Glaciers carved the deep valleys of the Alps."),
    ("bread", "kitchen", 2020, "Sourdough bread rises thanks to wild yeast."),
    ("honey", "kitchen", 2023, "Bees turn the nectar of flowers into honey."),
    ("compilers", "computing", 2021, "Compilers translate source code into machine code."),
]


class HashEmbedding(BaseEmbedding):
    """A LlamaIndex embedding over examples/local_embedding.py (deterministic, offline)."""

    dim: int = 256

    def _get_text_embedding(self, text: str) -> list[float]:
        return embed([text], self.dim)[0].tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)


def show(title: str, nodes: list) -> None:
    print(title)
    for hit in nodes:
        print(f"  {hit.node.node_id:<10} {hit.score:6.3f}  year={hit.node.metadata['year']}  "
              f"{hit.node.get_content()}")


def main(directory: str) -> None:
    # LlamaIndex builds its default node parser even for pre-built nodes, and that loads a
    # tiktoken encoding (downloaded if not cached) unless a global tokenizer is set.
    set_global_tokenizer(str.split)
    nodes = [TextNode(id_=node_id, text=text, metadata={"year": year, "source": source},
                      excluded_embed_metadata_keys=["year", "source"],  # embed the text only
                      relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=source)})
             for node_id, source, year, text in NOTES]
    with VecDBVectorStore(path=os.path.join(directory, "rag.vdb"),
                          collection_name="notes") as store:
        index = VectorStoreIndex(nodes, embed_model=HashEmbedding(),
                                 storage_context=StorageContext.from_defaults(vector_store=store))
        question = "valleys carved by rivers and glaciers"
        show(f"{question!r}:", index.as_retriever(similarity_top_k=2).retrieve(question))
        recent = MetadataFilters(filters=[MetadataFilter(key="year", value=2021, operator=">=")])
        show(f"{question!r}, year >= 2021:",
             index.as_retriever(similarity_top_k=2, filters=recent).retrieve(question))
        index.delete_ref_doc("geography")
        show(f"{question!r} after deleting document 'geography':",
             index.as_retriever(similarity_top_k=2).retrieve(question))
        print(f"nodes stored: {store.client.count()}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(tmp)
