"""Answers being written, owned by the app process rather than by a browser tab.

A Streamlit script run belongs to one tab and ends at the next click, reload or closed
tab; an answer must outlive all three. So each answer is written by a worker thread of its
own, which keeps the text so far here and stores the answer in the history when it ends.
Pages only look: any number of tabs follow the same answer, and only Stop (or Quit) ends
it early.

The worker runs the request as an asyncio task, because Stop must work before the first
token too: a blocking socket read cannot be interrupted from another thread, but a
cancelled task closes its HTTP connection at once, and the closed connection stops the
model upstream. The same mechanism bounds a model that does not answer at all.

After a conversation's first answer the model is also asked for a short title
(``app.titles``), the same way, once the answer is stored: it never delays that answer, and
any answer that starts meanwhile cancels it, so it never delays the next one either (the
model serves one request at a time). The first line of the question stays the title
whenever the model's is missing or unusable.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator

from app import titles
from app.chat import AnswerStream, Clock, Request, cached_stream, finish_answer
from app.errors import HistoryError
from app.history import History, Message, title_from
from launcher.paths import resolve_paths
from launcher.settings import Settings, load_settings
from opea.client import OpeaClient
from opea.errors import OpeaChatError, RequestTimeoutError

DEFAULT_SILENCE_TIMEOUT = Settings().answer_timeout


def silence_timeout() -> float:
    """The ``answer_timeout`` setting (config file or environment), as the launcher reads
    it; its default when the settings cannot be read (the launcher reports that)."""
    try:
        return load_settings(resolve_paths()).answer_timeout
    except OpeaChatError:
        return DEFAULT_SILENCE_TIMEOUT


def not_responding(seconds: float) -> RequestTimeoutError:
    return RequestTimeoutError(
        f"the model is not responding: nothing came for {seconds:g} s",
        hint="see its log with `opea-chat logs llm` and the Model panel; if it stays so, "
             "restart it with `opea-chat stop` and `opea-chat launch`")


class Generation:
    """One answer being written: its text so far, its measurements, and its end."""

    def __init__(self, request: Request, clock: Clock = time.monotonic):
        self.request = request
        self._clock = clock
        self.stream = AnswerStream(iter(()), clock)
        self.done = threading.Event()  # set once the answer is stored
        self.stored: Message | None = None
        # Why the answer could not be stored (a full disk): the page shows it with the text.
        self.not_stored: HistoryError | None = None
        self._lock = threading.Lock()
        self._stop_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def conversation_id(self) -> int:
        return self.request.conversation_id

    @property
    def text(self) -> str:
        return self.stream.text

    @property
    def waiting(self) -> bool:
        """No token has come yet."""
        return self.stream.first_token_at is None

    def seconds_waiting(self) -> float:
        started = self.stream.started
        return 0.0 if started is None else self._clock() - started

    def stop(self) -> None:
        """End the answer now, keeping what was written; safe from any thread, any time."""
        with self._lock:
            self._stop_requested = True
            loop, task = self._loop, self._task
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)

    def _attach(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[None]) -> bool:
        """Record the worker's task; False when a stop came before it started."""
        with self._lock:
            self._loop, self._task = loop, task
            return not self._stop_requested


class Generations:
    """The answers in flight in this app process, at most one per conversation."""

    def __init__(self, history: History, client: OpeaClient,
                 silence_timeout: float = DEFAULT_SILENCE_TIMEOUT,
                 clock: Clock = time.monotonic, write_titles: bool = False):
        self._history = history
        self._client = client
        self.silence_timeout = silence_timeout
        self._clock = clock
        self.write_titles = write_titles
        self._lock = threading.Lock()
        self._running: dict[int, Generation] = {}
        self._not_stored: dict[int, Generation] = {}  # answers the history refused
        # Titles being asked for, by conversation: the request's task once it has begun.
        self._titling: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Task[None]] | None
                            ] = {}
        self.last_not_responding: float | None = None  # time.time() of the last such answer

    def get(self, conversation_id: int) -> Generation | None:
        with self._lock:
            return self._running.get(conversation_id)

    def take_not_stored(self, conversation_id: int) -> Generation | None:
        """The conversation's last answer if the history could not store it (once)."""
        with self._lock:
            return self._not_stored.pop(conversation_id, None)

    def running(self) -> list[Generation]:
        with self._lock:
            return list(self._running.values())

    def start(self, request: Request) -> Generation | None:
        """Begin answering ``request`` on a worker thread, or return the answer already being
        written for its conversation. A cached answer is stored at once (None returned)."""
        with self._lock:
            existing = self._running.get(request.conversation_id)
            if existing is not None:
                return existing
            cached = cached_stream(self._history, request, self._clock)
            if cached is not None:
                list(cached.updates())
                finish_answer(self._history, request, cached)
                return None
            generation = Generation(request, self._clock)
            self._running[request.conversation_id] = generation
            # The model is wanted for an answer: a title can wait (it keeps its first line).
            for begun in self._titling.values():
                if begun is not None:
                    begun[0].call_soon_threadsafe(begun[1].cancel)
        threading.Thread(target=self._work, args=(generation,), daemon=True,
                         name=f"answer-{request.conversation_id}").start()
        return generation

    def stop(self, conversation_id: int) -> None:
        if generation := self.get(conversation_id):
            generation.stop()

    def stop_all(self) -> None:
        for generation in self.running():
            generation.stop()
        with self._lock:
            for begun in self._titling.values():
                if begun is not None:
                    begun[0].call_soon_threadsafe(begun[1].cancel)

    def title_pending(self, conversation_id: int) -> bool:
        """Whether a title for the conversation is being asked for."""
        with self._lock:
            return conversation_id in self._titling

    def _work(self, generation: Generation) -> None:
        try:
            asyncio.run(self._write(generation))
        finally:
            # Stored before it leaves the registry: a page that no longer finds it here
            # finds the answer in the history.
            try:
                generation.stored = finish_answer(self._history, generation.request,
                                                  generation.stream)
            except HistoryError as error:
                generation.not_stored = error
                with self._lock:
                    self._not_stored[generation.conversation_id] = generation
            finally:
                with self._lock:
                    self._running.pop(generation.conversation_id, None)
                try:
                    self._start_title(generation)
                finally:
                    generation.done.set()

    def _start_title(self, generation: Generation) -> None:
        """Ask for a title in the background when the answer just stored was the first.
        Marked pending before the answer is reported done, so a page that shows the answer
        knows a title may follow."""
        if not self.write_titles or generation.stored is None:
            return
        wanted = titles.wants_title(self._history, generation.stored)
        if wanted is None:
            return
        conversation_id = generation.conversation_id
        with self._lock:
            if conversation_id in self._titling:
                return
            self._titling[conversation_id] = None
        threading.Thread(target=self._title_work,
                         args=(conversation_id, *wanted, generation.request.use_documents),
                         daemon=True, name=f"title-{conversation_id}").start()

    def _title_work(self, conversation_id: int, question: str, answer: str,
                    use_documents: bool | None) -> None:
        try:
            asyncio.run(self._ask_title(conversation_id, question, answer, use_documents))
        except OpeaChatError:
            pass  # no title from the model: the first line of the question stays
        finally:
            with self._lock:
                self._titling.pop(conversation_id, None)

    async def _ask_title(self, conversation_id: int, question: str, answer: str,
                         use_documents: bool | None) -> None:
        task = asyncio.current_task()
        assert task is not None
        with self._lock:
            if self._running:
                return  # an answer began meanwhile: it has the model
            self._titling[conversation_id] = (asyncio.get_running_loop(), task)
        # Never from the documents: the title names the exchange, not the files.
        pieces = self._client.chat_stream_async(
            titles.title_messages(question, answer), titles.TITLE_PARAMS,
            use_documents=None if use_documents is None else False)
        text = ""
        try:
            while True:
                try:
                    text += await asyncio.wait_for(anext(pieces), self.silence_timeout)
                except StopAsyncIteration:
                    break
        except (asyncio.CancelledError, TimeoutError):
            return
        finally:
            await pieces.aclose()
        if title := titles.clean_title(text):
            # Only over the first line: a rename by the user meanwhile wins.
            self._history.retitle(conversation_id, title, was=title_from(question))

    async def _write(self, generation: Generation) -> None:
        task = asyncio.current_task()
        assert task is not None
        stream = generation.stream
        stream.begin()
        if not generation._attach(asyncio.get_running_loop(), task):
            stream.end()
            return  # stopped before anything was sent
        request = generation.request
        # The sources come at the stream's end (rag profile) and are stored with the answer.
        pieces = self._client.chat_stream_async(request.messages, request.params,
                                                use_documents=request.use_documents,
                                                on_sources=stream.sources.extend)
        try:
            await self._read(pieces, stream)
            stream.finished = True
            self.last_not_responding = None  # it answers again
        except asyncio.CancelledError:
            pass  # Stop: the partial answer is kept (status "stopped")
        except OpeaChatError as error:
            stream.error = error
        finally:
            stream.end()
            await pieces.aclose()

    async def _read(self, pieces: AsyncGenerator[str, None], stream: AnswerStream) -> None:
        while True:
            try:
                piece = await asyncio.wait_for(anext(pieces), self.silence_timeout)
            except StopAsyncIteration:
                return
            except TimeoutError:
                self.last_not_responding = time.time()
                raise not_responding(self.silence_timeout) from None
            stream.add(piece)
