"""Adapters that let other frameworks use vecdb as their vector store: LangChain
(langchain.py, ``pip install vecdb[langchain]``) and LlamaIndex (llama_index.py,
``pip install vecdb[llama-index]``). Each imports its framework only when imported itself;
nothing in vecdb imports them.
"""
