"""`llmkit chat`: a terminal conversation with a checkpoint, streamed token by token.

Commands: /reset (forget the conversation), /system TEXT (set the system prompt and reset),
/exit (or end of input). Works with piped stdin: each line is one user turn.
"""

from __future__ import annotations

import sys
from typing import TextIO

from llmkit.errors import LlmkitError
from llmkit.decode.engine import Engine, EngineConfig
from llmkit.decode.sampling_params import SamplingParams
from llmkit.serve.responses import TextDeltas

HELP = "commands: /reset, /system TEXT, /exit"


class ChatSession:
    def __init__(self, engine: Engine, params: SamplingParams, system: str | None = None):
        self.engine, self.params, self.system = engine, params, system
        self.history: list[dict[str, str]] = []

    def messages(self) -> list[dict[str, str]]:
        return ([{"role": "system", "content": self.system}] if self.system else []) + self.history

    def reply(self, user_text: str, out: TextIO) -> str:
        """Stream the assistant's answer to `out` and keep both turns in the history."""
        self.history.append({"role": "user", "content": user_text})
        tokenizer = self.engine.tokenizer
        prompt = tokenizer.encode(tokenizer.apply_chat_template(self.messages(), add_generation_prompt=True),
                                  add_special_tokens=False)
        rid = self.engine.add_request(prompt, self.params)
        deltas, text = TextDeltas(), ""
        while self.engine.has_work():
            for update in self.engine.step():
                if update.request_id == rid:
                    out.write(deltas.delta(0, update.text, update.finished))
                    out.flush()
                    text = update.text
        out.write("\n")
        self.history.append({"role": "assistant", "content": text})
        return text

    def handle(self, line: str, out: TextIO) -> bool:
        """One input line; False when the session should end."""
        line = line.strip()
        if not line:
            return True
        if line in ("/exit", "/quit"):
            return False
        if line == "/reset":
            self.history.clear()
            out.write("(conversation reset)\n")
        elif line.startswith("/system"):
            self.system = line[len("/system"):].strip() or None
            self.history.clear()
            out.write(f"(system prompt {'set' if self.system else 'cleared'}; conversation reset)\n")
        elif line.startswith("/"):
            out.write(f"unknown command {line.split()[0]}; {HELP}\n")
        else:
            self.reply(line, out)
        return True


def run_chat(session: ChatSession, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> None:
    interactive = stdin.isatty()
    if interactive:
        out.write(f"llmkit chat — {HELP}\n")
    while True:
        if interactive:
            out.write("you> ")
            out.flush()
        try:
            line = stdin.readline()
            line.encode("utf-8")  # undecodable bytes arrive as lone surrogates under surrogateescape
        except (UnicodeDecodeError, UnicodeEncodeError) as error:
            raise LlmkitError(f"standard input is not UTF-8 text (at position {error.start} of a line); "
                              "send UTF-8") from None
        if not line:  # end of input
            break
        if interactive:
            out.write("assistant> ")
        if not session.handle(line, out):
            break


def engine_for_chat(llm, max_model_len: int | None = None) -> Engine:
    return Engine(llm.model, llm.tokenizer, EngineConfig(max_num_seqs=1, max_model_len=max_model_len),
                  stop_ids=llm.stop_ids)
