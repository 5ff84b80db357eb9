// A chat for tests: the AI SDK's own AbstractChat (what useChat runs) over
// its DefaultChatTransport, with a plain state in place of React's. Shared
// by the Node test (node.mjs) and the browser page (page.mjs).
import { AbstractChat, DefaultChatTransport } from "ai";

class PlainState {
  constructor(messages = [], onChange = () => {}) {
    this.status = "ready";
    this.error = undefined;
    this.messages = messages;
    this.onChange = onChange;
  }
  pushMessage = (m) => {
    this.messages = this.messages.concat(m);
    this.onChange(this.messages);
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
    this.onChange(this.messages);
  };
  replaceMessage = (i, m) => {
    this.messages = [...this.messages.slice(0, i), this.snapshot(m), ...this.messages.slice(i + 1)];
    this.onChange(this.messages);
  };
  snapshot = (v) => structuredClone(v);
}

export class Chat extends AbstractChat {
  // init: the options of useChat (id, transport, ...), messages to start
  // with, and onChange, called with the messages after each change.
  constructor({ messages, onChange, ...init }) {
    super({ ...init, state: new PlainState(messages, onChange) });
  }
}

// transport returns the SDK's default transport for a Herald server.
export function transport(base) {
  return new DefaultChatTransport({ api: base + "/ai/chat" });
}

// answer returns the text of the chat's last assistant message.
export function answer(chat) {
  const m = chat.messages.findLast((m) => m.role === "assistant");
  return m ? m.parts.filter((p) => p.type === "text").map((p) => p.text).join("") : "";
}

// until polls cond until it holds, or fails after ms.
export async function until(cond, what, ms = 30000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// summary is what a test checks of a chat.
export function summary(chat) {
  return {
    status: chat.status,
    error: chat.error ? String(chat.error.message || chat.error) : "",
    text: answer(chat),
    assistants: chat.messages.filter((m) => m.role === "assistant").length,
    messageId: chat.messages.findLast((m) => m.role === "assistant")?.id ?? "",
  };
}
