"""The megaservice: OPEA's ServiceOrchestrator on ChatQnA's API, with two graphs.

- ``chat``: one LLM node (the chat profile);
- ``rag``: ChatQnA's without-rerank graph, embedding -> retriever -> LLM (the rag profile),
  with ChatQnA's RAG prompt around the retrieved passages, and the passages returned as the
  answer's sources (see ``opea.sources``). A request with ``"use_documents": false`` is
  answered by the LLM alone; so is a question for which nothing was retrieved.

ChatQnA's own chatqna.py cannot run with only an LLM (its input alignment expects a
retriever's output), so this module defines the chat graph: ``/v1/chatqna`` takes a
ChatCompletionRequest and answers in ChatQnA's wire format. Unlike the stock service it
passes the conversation to the LLM as OpenAI messages (so the model's chat template sees
roles), reports LLM failures as HTTP 502 instead of a bare 500 (on the streaming path too),
answers malformed requests with 400, and stops generation upstream when the client goes
away.

Why the streaming path is our own: OPEA's orchestrator streams from the LLM with a
synchronous ``requests.post(stream=True)`` inside a generator that nothing closes, and
Starlette never closes a synchronous body iterator when the client disconnects. Closing the
client's stream therefore left the LLM generating until its ``max_tokens`` (measured: no
disconnect reached llama.cpp within 20 s). Here the upstream request is an asynchronous
httpx stream owned by the response body, closed as soon as the client disconnects; and a
client that leaves before the LLM has answered at all (Stop before the first token) cancels
the pending upstream request too, instead of leaving it to run to its end.

Run: ``python -m opea.megaservice --port 8888 --llm-url http://127.0.0.1:9009 --model NAME``.
The defaults come from ChatQnA's variables (MEGA_SERVICE_PORT, LLM_SERVER_HOST_IP,
LLM_SERVER_PORT, LLM_MODEL), so the same module runs in a container.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncGenerator
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import anyio
import httpx
from comps import MicroService, ServiceOrchestrator, ServiceRoleType, ServiceType
from comps.cores.proto.api_protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseChoice,
    ChatMessage,
    UsageInfo,
)
from comps.cores.proto.docarray import LLMParams
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from opea.host_guard import LOOPBACK_NAMES, HostGuard
from opea.sources import USE_DOCUMENTS_FIELD, Source, from_retrieved, sources_event
from opea.stack import CHATQNA_PATH
from opea.wire import OpenAIReframer

log = logging.getLogger("opea_chat.megaservice")
ROLES = ("system", "user", "assistant")
# Generous like OPEA's own 2000 s: a large model on a busy GPU can pause long between tokens.
LLM_READ_TIMEOUT = 2000.0
# ChatQnA's retriever defaults (chatqna.py: RetrieverParms).
DEFAULT_K = 4
DEFAULT_SEARCH_TYPE = "similarity"
# TEI's /embed truncates nothing by default; a question longer than this is cut for the
# embedding only (the LLM still gets all of it).
MAX_QUERY_CHARS = 2000
# Set while a chat request is handled: the client has gone away. A context variable, since
# OPEA's orchestrator runs each node in a task of its own (which copies the context).
CLIENT_GONE: ContextVar[asyncio.Event | None] = ContextVar("client_gone", default=None)


async def watch_disconnect(request: Request, gone: asyncio.Event) -> None:
    """Set ``gone`` when the client disconnects (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    gone.set()


async def unless_client_gone(work: asyncio.Future[Any]) -> Any:
    """``work``'s result, or cancel it (closing its connection) once the client is gone."""
    gone = CLIENT_GONE.get()
    if gone is None:
        return await work
    waiting = asyncio.ensure_future(gone.wait())
    try:
        await asyncio.wait({work, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
    if not work.done():
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        raise HTTPException(499, "the client closed the request")
    return work.result()


def to_openai_messages(messages: str | list[dict[str, Any]]) -> list[dict[str, str]]:
    """ChatCompletionRequest.messages as a clean OpenAI message list, or HTTP 400."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    result = []
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise HTTPException(400, f"unknown message role {role!r}; use one of {ROLES}")
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            content = "\n".join(part.get("text", "") for part in content
                                if isinstance(part, dict) and part.get("type") == "text")
        if not isinstance(content, str):
            raise HTTPException(400, f"a {role} message needs text content")
        result.append({"role": role, "content": content})
    if not result or result[-1]["role"] != "user" or not result[-1]["content"].strip():
        raise HTTPException(400, "the last message must be a non-empty user message")
    return result


# What the LLM servers accept (OpenAI's ranges); anything else is refused here with a reason
# instead of being forwarded and answered with the LLM server's traceback.
NUMBER_RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "frequency_penalty": (-2.0, 2.0),
    "presence_penalty": (-2.0, 2.0),
    "repetition_penalty": (0.0, 10.0),
}
WHOLE_NUMBERS = ("max_tokens", "top_k")


def request_problem(data: Any) -> str | None:
    """Why a chat request body cannot be served, in one line, or None when it can."""
    if not isinstance(data, dict):
        return "the body must be a JSON object"
    if "stream" in data and not isinstance(data["stream"], bool):
        return f"stream must be true or false, not {data['stream']!r}"
    for name, (low, high) in NUMBER_RANGES.items():
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name} must be a number, not {value!r}"
        if not low <= value <= high:
            return f"{name} must be between {low:g} and {high:g}, not {value!r}"
    for name in WHOLE_NUMBERS:
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            return f"{name} must be a whole number of at least 1, not {value!r}"
    return None


def validation_problem(error: ValidationError) -> str:
    """pydantic's first complaint as one line."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "the body"
    return f"{where}: {first.get('msg', 'invalid')}"


class ClosingStreamingResponse(StreamingResponse):
    """A streaming response that always closes its body, however the response ends.

    Starlette cancels the sending task when the client disconnects; if the body generator
    was paused at a ``yield`` it is never resumed nor closed, and whatever it holds (our
    upstream LLM request) stays open. Closing it here ends that request at once.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            body = self.body_iterator
            if isinstance(body, AsyncGenerator):
                with anyio.CancelScope(shield=True):
                    await body.aclose()


def upstream_reason(body: str) -> str:
    """The LLM server's error as one line: its message, never its traceback or paths."""
    try:
        parsed = json.loads(body)
        error = parsed.get("error", parsed.get("detail", parsed))
        message = error.get("message", error) if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = body
    lines = [line for line in str(message).splitlines() if line.strip()]
    # A traceback's last line is its exception; anything else: its first line.
    line = lines[-1] if lines and lines[0].startswith("Traceback") else (lines or [""])[0]
    return " ".join(line.split())[:300] or "(no reason given)"


class ChatOrchestrator(ServiceOrchestrator):  # type: ignore[misc]
    """A one-node graph (the LLM) with ChatQnA's input and output alignment for chat."""

    def __init__(self, model_name: str):
        super().__init__()
        self.model_name = model_name
        self._llm_http: httpx.AsyncClient | None = None

    @property
    def llm_http(self) -> httpx.AsyncClient:
        """One client for every request to the LLM: a client per request costs a TLS
        context each (native memory the process never gave back: +46% after 300 chats in
        the soak) and a new connection each."""
        if self._llm_http is None:
            self._llm_http = httpx.AsyncClient(
                timeout=httpx.Timeout(LLM_READ_TIMEOUT, connect=10.0), trust_env=False,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=16))
        return self._llm_http

    async def execute(self, session: aiohttp.ClientSession, req_start: float, cur_node: str,
                      inputs: dict[str, Any], runtime_graph: Any,
                      llm_parameters: LLMParams = LLMParams(), **kwargs: Any) -> Any:  # noqa: B008
        service = self.services[cur_node]
        if service.service_type != ServiceType.LLM or not llm_parameters.stream:
            return await super().execute(session, req_start, cur_node, inputs, runtime_graph,
                                         llm_parameters, **kwargs)
        sources = inputs.get("sources")
        body = self.align_inputs(inputs, cur_node, runtime_graph, llm_parameters.dict(),
                                 **kwargs)
        url = service.endpoint_path(None)
        http = self.llm_http
        upstream = await unless_client_gone(asyncio.ensure_future(
            http.send(http.build_request("POST", url, json=body), stream=True)))
        if upstream.is_error:
            # OPEA's stream path ignores the status and answers 200 with only [DONE].
            reason = (await upstream.aread()).decode("utf-8", errors="replace")
            await upstream.aclose()
            raise HTTPException(502, f"the LLM server answered HTTP {upstream.status_code}: "
                                     f"{upstream_reason(reason)}")
        return (ClosingStreamingResponse(self._relay(upstream, sources),
                                         media_type="text/event-stream"), cur_node)

    async def _relay(self, upstream: httpx.Response, sources: list[dict[str, Any]] | None
                     ) -> AsyncGenerator[str, None]:
        reframer = OpenAIReframer()
        try:
            async for chunk in upstream.aiter_raw():
                for event in reframer.feed(chunk):
                    yield event
                if reframer.done:
                    break
            else:
                for event in reframer.finish():
                    yield event
            if sources is not None:
                # After [DONE]: a plain ChatQnA client has stopped reading by then.
                yield sources_event([Source(**item) for item in sources])
        finally:
            # Closing the upstream response before its end drops its connection: that is
            # what tells the LLM server to stop generating.
            await upstream.aclose()
            self.metrics.pending_update(False)

    def align_inputs(self, inputs: dict[str, Any], cur_node: str, runtime_graph: Any,
                     llm_parameters_dict: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if self.services[cur_node].service_type != ServiceType.LLM:
            return inputs
        return {
            "model": self.model_name,
            "messages": inputs["messages"],
            "max_tokens": llm_parameters_dict["max_tokens"],
            "temperature": llm_parameters_dict["temperature"],
            "top_p": llm_parameters_dict["top_p"],
            "frequency_penalty": llm_parameters_dict["frequency_penalty"],
            "presence_penalty": llm_parameters_dict["presence_penalty"],
            "stream": llm_parameters_dict["stream"],
        }

    def align_outputs(self, data: Any, cur_node: str, inputs: dict[str, Any], runtime_graph: Any,
                      llm_parameters_dict: dict[str, Any], **kwargs: Any) -> Any:
        if self.services[cur_node].service_type != ServiceType.LLM:
            return data
        try:
            text = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise HTTPException(502, f"the LLM server answered with an error: {data}") from exc
        return {"text": text or "", "usage": data.get("usage") or {}}


def rag_prompt(question: str, passages: list[str]) -> str:
    """ChatQnA's RAG prompt (chatqna.py, ``ChatTemplate.generate_rag_prompt``): a
    ``###``-sectioned instruction to answer from the search results, not to use what is
    irrelevant, and not to make anything up; then the results, the question and an answer
    cue. Worded here in our own words, with the same sections in the same order."""
    context = "\n".join(passages)
    return (
        "### You are a helpful, respectful and honest assistant who answers the user's "
        "question. Use the search results from the user's own documents below. Leave out "
        "anything in them that does not bear on the question. If you do not know the "
        "answer, say so instead of making one up.\n"
        f"### Search results: {context}\n"
        f"### Question: {question}\n"
        "### Answer:\n"
    )


def rag_messages(conversation: list[dict[str, str]], passages: list[str]
                 ) -> list[dict[str, str]]:
    """The conversation with its last question wrapped in the RAG prompt; unchanged when
    nothing was retrieved (then the model answers as in a plain chat)."""
    if not passages:
        return conversation
    question = conversation[-1]["content"]
    return [*conversation[:-1], {"role": "user", "content": rag_prompt(question, passages)}]


def _upstream_error(name: str, data: Any) -> HTTPException:
    text = data if isinstance(data, str) else repr(data)
    return HTTPException(502, f"the {name} service answered with an error: {text[:500]}")


class RagOrchestrator(ChatOrchestrator):
    """ChatQnA's without-rerank graph: embedding -> retriever -> LLM.

    The per-request values travel as keyword arguments of ``schedule`` (comps passes them
    to every ``align_*`` call): ``conversation`` (the OpenAI messages) and ``retrieval``
    (``k``, ``search_type``). The retriever's output carries the passages on to the LLM
    node as ``sources``, which also end up in the answer.
    """

    def align_inputs(self, inputs: dict[str, Any], cur_node: str, runtime_graph: Any,
                     llm_parameters_dict: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        kind = self.services[cur_node].service_type
        if kind == ServiceType.EMBEDDING:  # TEI's /embed
            return {"inputs": inputs["text"][:MAX_QUERY_CHARS]}
        if kind == ServiceType.RETRIEVER:  # OPEA's /v1/retrieval (EmbedDoc + parameters)
            return {"text": inputs["text"], "embedding": inputs["embedding"],
                    **kwargs.get("retrieval", {})}
        return super().align_inputs(inputs, cur_node, runtime_graph, llm_parameters_dict,
                                    **kwargs)

    def align_outputs(self, data: Any, cur_node: str, inputs: dict[str, Any], runtime_graph: Any,
                      llm_parameters_dict: dict[str, Any], **kwargs: Any) -> Any:
        kind = self.services[cur_node].service_type
        if kind == ServiceType.EMBEDDING:
            # TEI answers [[floats]] for one input; an error is a JSON object.
            if not (isinstance(data, list) and data and isinstance(data[0], list)):
                raise _upstream_error("embedding", data)
            return {"text": inputs["inputs"], "embedding": data[0]}
        if kind == ServiceType.RETRIEVER:
            docs = data.get("retrieved_docs") if isinstance(data, dict) else None
            if not isinstance(docs, list):
                raise _upstream_error("retriever", data)
            sources = [from_retrieved(doc) for doc in docs if isinstance(doc, dict)]
            sources = [source for source in sources if source.passage.strip()]
            conversation = kwargs["conversation"]
            return {"messages": rag_messages(conversation, [s.passage for s in sources]),
                    "sources": [source.to_json() for source in sources]}
        return super().align_outputs(data, cur_node, inputs, runtime_graph,
                                     llm_parameters_dict, **kwargs)


def _remote(name: str, url: str, endpoint: str, kind: ServiceType) -> MicroService:
    parts = urlsplit(url)
    return MicroService(name=name, host=parts.hostname, port=parts.port or 80,
                        endpoint=endpoint, use_remote_service=True, service_type=kind)


class GuardedMicroService(MicroService):  # type: ignore[misc]
    """comps' MicroService without its CORS policy (any Origin, with credentials) and
    behind the Host/Origin guard, so that a DNS-rebound web page cannot use the model."""

    def __init__(self, *args: Any, allowed_hosts: frozenset[str] = LOOPBACK_NAMES,
                 **kwargs: Any) -> None:
        # Set before comps' constructor, which builds the app.
        self.allowed_hosts = allowed_hosts
        super().__init__(*args, **kwargs)

    def _create_app(self) -> Any:
        self.cors = False
        app = super()._create_app()
        app.add_middleware(HostGuard, allowed=self.allowed_hosts)
        return app


class ChatMegaservice:
    """The ``chat`` graph, and with ``embedding_url`` and ``retriever_url`` also the
    ``rag`` graph, which then answers every request that does not opt out of documents."""

    def __init__(self, host: str, port: int, llm_url: str, model_name: str,
                 embedding_url: str | None = None, retriever_url: str | None = None,
                 allowed_hosts: frozenset[str] = LOOPBACK_NAMES):
        self.host = host
        self.port = port
        self.allowed_hosts = allowed_hosts
        self.llm_url = llm_url
        self.orchestrator = ChatOrchestrator(model_name)
        self.orchestrator.add(_remote("llm", llm_url, "/v1/chat/completions", ServiceType.LLM))
        self.rag: RagOrchestrator | None = None
        self.retriever_node = ""
        self.urls = {"LLM": llm_url}
        if embedding_url and retriever_url:
            rag = RagOrchestrator(model_name)
            embedding = _remote("embedding", embedding_url, "/embed", ServiceType.EMBEDDING)
            retriever = _remote("retriever", retriever_url, "/v1/retrieval",
                                ServiceType.RETRIEVER)
            llm = _remote("llm", llm_url, "/v1/chat/completions", ServiceType.LLM)
            rag.add(embedding).add(retriever).add(llm)
            rag.flow_to(embedding, retriever)
            rag.flow_to(retriever, llm)
            self.rag = rag
            self.retriever_node = retriever.name  # comps names nodes "NAME/MicroService"
            self.urls.update(embedding=embedding_url, retriever=retriever_url)

    def _unreachable(self, exc: Exception) -> str:
        """Which node could not be reached, by the address the failure names."""
        where = ""
        if isinstance(exc, aiohttp.ClientConnectorError):
            where = f"{exc.host}:{exc.port}"
        elif isinstance(exc, httpx.TransportError):
            with contextlib.suppress(RuntimeError):  # no request attached
                where = f"{exc.request.url.host}:{exc.request.url.port}"
        for name, url in self.urls.items():
            if where and urlsplit(url).netloc == where:
                return f"cannot reach the {name} server at {url}"
        return f"cannot reach a service of the graph ({exc})"

    async def handle_chat(self, request: Request) -> Any:
        try:
            data = await request.json()
        except ValueError as exc:
            raise HTTPException(400, detail="the body is not JSON") from exc
        if problem := request_problem(data):
            raise HTTPException(400, detail=problem)
        try:
            chat = ChatCompletionRequest.model_validate(data)
        except ValidationError as exc:
            raise HTTPException(400, detail=validation_problem(exc)) from exc
        messages = to_openai_messages(chat.messages)
        use_documents = data.get(USE_DOCUMENTS_FIELD, True)
        if not isinstance(use_documents, bool):
            raise HTTPException(400, f"{USE_DOCUMENTS_FIELD} must be true or false")
        params = LLMParams(
            max_tokens=chat.max_tokens or 1024,
            top_k=chat.top_k or 10,
            top_p=chat.top_p if chat.top_p is not None else 0.95,
            temperature=chat.temperature if chat.temperature is not None else 0.01,
            frequency_penalty=chat.frequency_penalty or 0.0,
            presence_penalty=chat.presence_penalty or 0.0,
            repetition_penalty=chat.repetition_penalty or 1.03,
            stream=data.get("stream", True),
        )
        rag = self.rag if use_documents else None
        gone = asyncio.Event()
        watcher = asyncio.ensure_future(watch_disconnect(request, gone))
        token = CLIENT_GONE.set(gone)
        try:
            if rag is None:
                results, graph = await self.orchestrator.schedule(
                    initial_inputs={"messages": messages}, llm_parameters=params)
            else:
                results, graph = await rag.schedule(
                    initial_inputs={"text": messages[-1]["content"]}, llm_parameters=params,
                    conversation=messages,
                    retrieval={"k": chat.k or DEFAULT_K,
                               "search_type": chat.search_type or DEFAULT_SEARCH_TYPE})
        except (aiohttp.ClientError, httpx.TransportError) as exc:
            raise HTTPException(502, self._unreachable(exc)) from exc
        finally:
            CLIENT_GONE.reset(token)
            watcher.cancel()
        for response in results.values():
            if isinstance(response, StreamingResponse):
                return response
        answer = results[graph.all_leaves()[-1]]
        usage = answer.get("usage") or {}
        body = ChatCompletionResponse(
            model="chatqna",
            choices=[ChatCompletionResponseChoice(
                index=0, message=ChatMessage(role="assistant", content=answer["text"]),
                finish_reason="stop")],
            usage=UsageInfo(**{k: v for k, v in usage.items() if k in UsageInfo.model_fields}),
        )
        if rag is None:
            return body
        return JSONResponse({**body.model_dump(mode="json"),
                             "sources": results[self.retriever_node]["sources"]})

    def serve(self) -> None:
        service = GuardedMicroService(
            "opea-chat megaservice",
            allowed_hosts=self.allowed_hosts,
            service_role=ServiceRoleType.MEGASERVICE,
            host=self.host,
            port=self.port,
            endpoint=CHATQNA_PATH,
            input_datatype=ChatCompletionRequest,
            output_datatype=ChatCompletionResponse,
        )
        service.add_route(CHATQNA_PATH, self.handle_chat, methods=["POST"])
        service.start()


def main(argv: list[str] | None = None) -> None:
    env = os.environ
    default_llm = (f"http://{env.get('LLM_SERVER_HOST_IP', '127.0.0.1')}:"
                   f"{env.get('LLM_SERVER_PORT', '9009')}")
    parser = argparse.ArgumentParser(prog="python -m opea.megaservice")
    parser.add_argument("--host", default=env.get("MEGA_SERVICE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("MEGA_SERVICE_PORT", "8888")))
    parser.add_argument("--llm-url", default=default_llm)
    parser.add_argument("--model", default=env.get("LLM_MODEL", "local-model"))
    # With both, the rag graph (ChatQnA's EMBEDDING_SERVER_* / RETRIEVER_SERVICE_* too).
    parser.add_argument("--embedding-url", default=_env_url("EMBEDDING_SERVER"))
    parser.add_argument("--retriever-url", default=_env_url("RETRIEVER_SERVICE"))
    parser.add_argument("--allowed-host", action="append", default=[],
                        help="a host name, besides the loopback ones, that may address it")
    args = parser.parse_args(argv)
    allowed = LOOPBACK_NAMES | {name.lower() for name in args.allowed_host}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ChatMegaservice(args.host, args.port, args.llm_url, args.model,
                    args.embedding_url, args.retriever_url, allowed).serve()


def _env_url(prefix: str) -> str | None:
    host = os.environ.get(f"{prefix}_HOST_IP")
    port = os.environ.get(f"{prefix}_PORT")
    return f"http://{host}:{port or 80}" if host else None


if __name__ == "__main__":
    main()
