// The AI SDK in Node against Herald: node node.mjs SCENARIO HERALD_URL CONTROL_URL
// prints one JSON object with what the chats saw. The Go test
// (internal/aisdk/sdk_test.go) runs it and checks the result; CONTROL_URL
// is the test's own server, which releases the held upstream (POST
// /release) and cuts streams (POST /cut?id=<message id>).
import { Chat, transport, answer, until, summary } from "./chat.mjs";

const [scenario, base, control] = process.argv.slice(2);
const call = (path) => fetch(control + path, { method: "POST" }).then((r) => { if (!r.ok) throw new Error(`${path}: ${r.status}`); });
const chatId = `node-${scenario}-${Date.now()}`;
const newChat = (messages) => new Chat({ id: chatId, messages, transport: transport(base) });
const out = {};

// send sends a question and returns, once the answer has begun, the
// sending's promise (wrapped: an async function would wait for it).
async function send(chat) {
  const sending = chat.sendMessage({ text: "Tell me a long story" });
  await until(() => answer(chat).length >= 10, "the first words of the answer");
  return { sending };
}

switch (scenario) {
  case "stop-and-resume": {
    // The SDK's stop() only closes the connection; a new chat (a reloaded
    // page: same id, the messages it had) resumes and gets the whole answer.
    const chat = newChat();
    const { sending } = await send(chat);
    await chat.stop();
    await sending;
    out.afterStop = summary(chat);
    const again = newChat(structuredClone(chat.messages));
    const resuming = again.resumeStream();
    // (The copied messages hold the partial answer already: wait for the
    // replay itself.)
    await until(() => again.status === "streaming" && answer(again).length >= out.afterStop.text.length, "the replay to catch up");
    out.replayedPrefix = answer(again);
    await call("/release");
    await resuming;
    out.resumed = summary(again);
    break;
  }
  case "cut-and-resume": {
    // The server cuts the stream mid-answer: the SDK must see an error, not
    // a short answer that looks whole; resumeStream() then completes it.
    const chat = newChat();
    const { sending } = await send(chat);
    await call("/cut?id=" + encodeURIComponent(summary(chat).messageId));
    await sending;
    out.afterCut = summary(chat);
    const resuming = chat.resumeStream();
    await until(() => chat.status === "streaming", "the resume to stream");
    await call("/release");
    await resuming;
    out.resumed = summary(chat);
    break;
  }
  case "stop-endpoint": {
    // The SDK's documented stop: POST the stop endpoint, then stop().
    const chat = newChat();
    const { sending } = await send(chat);
    const { messageId } = summary(chat);
    const r = await fetch(`${base}/ai/chat/${encodeURIComponent(chatId)}/stop`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ activeStreamId: messageId, assistantMessage: chat.messages.at(-1) }),
    });
    out.stopAnswer = await r.json();
    await chat.stop();
    await sending;
    out.afterStop = summary(chat);
    await chat.resumeStream(); // 204: nothing active
    out.afterResume = summary(chat);
    break;
  }
  case "nothing-to-resume": {
    const chat = newChat();
    await chat.resumeStream();
    out.afterResume = summary(chat);
    out.messages = chat.messages.length;
    break;
  }
  default:
    throw new Error(`unknown scenario ${scenario}`);
}
console.log(JSON.stringify(out));
