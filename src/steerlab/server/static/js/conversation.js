// Conversations as plain text, so they can be typed or pasted into a textarea:
//
//   user: Bonjour !
//   assistant: Hello! How can I help?
//
// A line starting with "system:", "user:" or "assistant:" starts a message; other lines continue the
// current one; text before any role line is a user message. Several conversations are separated by a
// line of three or more dashes ("---").

const ROLE_LINE = /^\s*(system|user|assistant)\s*:\s?(.*)$/i;

export function parseConversation(text) {
  const messages = [];
  let current = null;
  for (const line of text.split(/\r?\n/)) {
    const m = ROLE_LINE.exec(line);
    if (m) {
      current = { role: m[1].toLowerCase(), content: m[2] };
      messages.push(current);
    } else if (current) {
      current.content += `\n${line}`;
    } else if (line.trim()) {
      current = { role: "user", content: line };
      messages.push(current);
    }
  }
  for (const msg of messages) msg.content = msg.content.trim();
  return messages.filter((msg) => msg.content);
}

export function parseConversations(text) {
  return text
    .split(/^\s*-{3,}\s*$/m)
    .map(parseConversation)
    .filter((c) => c.length);
}

export function formatConversation(messages) {
  return messages.map((m) => `${m.role}: ${m.content}`).join("\n");
}
