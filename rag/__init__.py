"""opea-chat's own RAG services for the local runtime: embedding, dataprep and retriever
on OPEA's APIs (see rag/README.md for their command lines and APIs)."""
