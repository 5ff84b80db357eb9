// The browser side of the Chromium test (internal/aisdk/sdk_test.go): a page
// that chats with Herald through the AI SDK, bundled by esbuild from
// node_modules. It keeps the chat (id and messages) in sessionStorage, as an
// app keeps it in its store, and on load resumes the chat's active answer
// as useChat({ resume: true }) does on mount. The Herald server is the
// page's ?herald= parameter (another origin: it allows this one by CORS).
import { Chat, transport, summary } from "./chat.mjs";

const base = new URLSearchParams(location.search).get("herald");
const saved = JSON.parse(sessionStorage.getItem("chat") || "null");
const chat = new Chat({
  id: saved?.id,
  messages: saved?.messages ?? [],
  transport: transport(base),
  onChange: (messages) => sessionStorage.setItem("chat", JSON.stringify({ id: chat.id, messages })),
});
const test = {
  loads: Number(sessionStorage.getItem("loads") || 0) + 1,
  resumed: false,
  send: (text) => { chat.sendMessage({ text }); },
  summary: () => summary(chat),
};
sessionStorage.setItem("loads", String(test.loads));
window.heraldTest = test;
if (saved) {
  chat.resumeStream().then(() => { test.resumed = true; });
}
