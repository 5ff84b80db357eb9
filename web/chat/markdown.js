// A small, safe Markdown renderer for the chat page: the subset models
// write — paragraphs, line breaks, headings, fenced code blocks, inline
// code, lists (nested, ordered or not), block quotes, rules, emphasis
// (**strong**, *em*, ~~strike~~) and links to http and https URLs only.
//
// Safety by construction: it builds DOM nodes. Text (the model's and the
// user's) only ever becomes a text node (createTextNode); elements come
// from a fixed list of tags; the only attribute it sets from the text is a
// link's href, and only to a URL that parses with the http: or https:
// scheme. Raw HTML in the text is shown as text. It never uses innerHTML.
//
// It is written for streaming: an unfinished construct (an open code
// fence, a lone `**`) renders as what it is so far, and the next render,
// with more text, fixes it.

const MAX_DEPTH = 6; // nesting of quotes and lists; deeper is plain text

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( *)([-*+]|\d{1,9}[.)])([ \t]+(.*))?$/;
const BLANK = /^\s*$/;

/**
 * render returns the Markdown text as a DocumentFragment.
 * @param {string} text
 * @returns {DocumentFragment}
 */
export function render(text) {
  const out = document.createDocumentFragment();
  blocks(String(text).split(/\r\n|\r|\n/), out, 0);
  return out;
}

function el(tag, ...children) {
  const e = document.createElement(tag);
  e.append(...children);
  return e;
}

// blocks renders lines as block elements into parent.
function blocks(lines, parent, depth) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (BLANK.test(line)) {
      i++;
      continue;
    }
    let m;
    if ((m = FENCE.exec(line))) {
      const fence = m[1];
      const body = [];
      i++;
      while (i < lines.length && !isClosingFence(lines[i], fence)) body.push(lines[i++]);
      i++; // the closing fence, or past the end while the answer streams
      const code = el("code", document.createTextNode(body.join("\n")));
      if (m[2]) code.dataset.lang = m[2].slice(0, 40);
      parent.append(el("pre", code));
      continue;
    }
    if ((m = HEADING.exec(line))) {
      // The page's own h1 and h2 come first: a heading of an answer is h3
      // or deeper.
      const h = el("h" + Math.min(6, m[1].length + 2));
      inline(m[2] || "", h, depth);
      parent.append(h);
      i++;
      continue;
    }
    if (RULE.test(line)) {
      parent.append(document.createElement("hr"));
      i++;
      continue;
    }
    if (QUOTE.test(line) && depth < MAX_DEPTH) {
      const inner = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) {
        inner.push(m[1]);
        i++;
      }
      const q = document.createElement("blockquote");
      blocks(inner, q, depth + 1);
      parent.append(q);
      continue;
    }
    if ((m = ITEM.exec(line)) && depth < MAX_DEPTH) {
      i = list(lines, i, parent, depth);
      continue;
    }
    // A paragraph: lines up to a blank line or the start of another block.
    const para = [line.trim()];
    i++;
    while (i < lines.length && !BLANK.test(lines[i]) && !startsBlock(lines[i])) para.push(lines[i++].trim());
    const p = document.createElement("p");
    para.forEach((l, k) => {
      if (k) p.append(document.createElement("br"));
      inline(l, p, depth);
    });
    parent.append(p);
  }
}

function isClosingFence(line, fence) {
  const t = line.trim();
  return t.length >= fence.length && t[0] === fence[0] && /^(`+|~+)$/.test(t);
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

// list renders the list that starts at lines[start] and returns the index
// of the first line after it. Items are the lines at the list's indent
// with a marker of its kind; deeper lines belong to the item above them
// (continuations and nested lists).
function list(lines, start, parent, depth) {
  const first = ITEM.exec(lines[start]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const listEl = document.createElement(ordered ? "ol" : "ul");
  if (ordered) {
    const n = parseInt(first[2], 10);
    if (n !== 1) listEl.setAttribute("start", String(n));
  }
  let i = start;
  while (i < lines.length) {
    const m = ITEM.exec(lines[i]);
    if (!m || m[1].length !== indent || /\d/.test(m[2]) !== ordered) break;
    const body = [m[4] || ""];
    const contentIndent = indent + m[2].length + 1;
    i++;
    for (;;) {
      if (i >= lines.length) break;
      const l = lines[i];
      if (BLANK.test(l)) {
        // A blank line ends the list unless more of this item or list
        // follows.
        let j = i;
        while (j < lines.length && BLANK.test(lines[j])) j++;
        if (j < lines.length && leading(lines[j]) > indent) {
          body.push("");
          i++;
          continue;
        }
        break;
      }
      if (leading(l) > indent) {
        body.push(l.slice(Math.min(leading(l), contentIndent)));
        i++;
        continue;
      }
      if (ITEM.test(l) || startsBlock(l)) break;
      body.push(l.trim()); // a lazy continuation of the item's text
      i++;
    }
    const li = document.createElement("li");
    const wrap = document.createElement("div");
    blocks(body, wrap, depth + 1);
    // A tight item (no blank line in it) shows its text without the
    // margins of paragraphs.
    if (!body.some((l) => BLANK.test(l))) {
      for (const p of [...wrap.children]) if (p.tagName === "P") p.replaceWith(...p.childNodes);
    }
    li.append(...wrap.childNodes);
    listEl.append(li);
    let j = i;
    while (j < lines.length && BLANK.test(lines[j])) j++;
    if (j > i && j < lines.length) {
      const next = ITEM.exec(lines[j]);
      if (next && next[1].length === indent && /\d/.test(next[2]) === ordered) i = j;
    }
  }
  parent.append(listEl);
  return i;
}

function leading(line) {
  return line.length - line.trimStart().length;
}

// ---- inline ------------------------------------------------------------

const PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const BARE_URL = /^https?:\/\/[^\s<>"]*[^\s<>".,:;'")\]!?*_~]/;

// safeURL returns the URL if it is an absolute http or https URL, else "".
export function safeURL(raw) {
  const s = String(raw).trim();
  if (!/^https?:\/\//i.test(s)) return "";
  let u;
  try {
    u = new URL(s);
  } catch {
    return "";
  }
  return u.protocol === "http:" || u.protocol === "https:" ? u.href : "";
}

function link(href, parent) {
  const a = document.createElement("a");
  a.href = href;
  a.rel = "noopener noreferrer nofollow";
  a.target = "_blank";
  parent.append(a);
  return a;
}

// inline renders one line of text (emphasis, code, links) into parent.
function inline(s, parent, depth) {
  let text = "";
  const flush = () => {
    if (text) parent.append(document.createTextNode(text));
    text = "";
  };
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    // A backslash escapes punctuation.
    if (c === "\\" && i + 1 < s.length && PUNCT.includes(s[i + 1])) {
      text += s[i + 1];
      i += 2;
      continue;
    }
    // `code`: the same number of backticks opens and closes.
    if (c === "`") {
      let n = 0;
      while (s[i + n] === "`") n++;
      const close = findRun(s, "`", n, i + n);
      if (close < 0) {
        text += s.slice(i, i + n);
        i += n;
        continue;
      }
      let code = s.slice(i + n, close);
      if (code.length > 2 && code[0] === " " && code[code.length - 1] === " ") code = code.slice(1, -1);
      flush();
      parent.append(el("code", document.createTextNode(code)));
      i = close + n;
      continue;
    }
    // [text](url) and ![alt](url): a link if the URL is http or https;
    // otherwise the text alone. Images are shown as links, never loaded.
    if (c === "[" || (c === "!" && s[i + 1] === "[")) {
      const open = c === "!" ? i + 1 : i;
      const m = linkAt(s, open);
      if (m) {
        flush();
        const href = safeURL(m.url);
        const label = m.text || (href ? m.url : "");
        if (href) {
          const a = link(href, parent);
          if (depth < MAX_DEPTH) inlineNoLinks(label, a, depth + 1);
          else a.append(document.createTextNode(label));
        } else if (depth < MAX_DEPTH) {
          inlineNoLinks(label, parent, depth + 1);
        } else {
          parent.append(document.createTextNode(label));
        }
        i = m.end;
        continue;
      }
    }
    // An autolink: an http or https URL between < and >.
    if (c === "<") {
      const end = s.indexOf(">", i + 1);
      const href = end > 0 ? safeURL(s.slice(i + 1, end)) : "";
      if (href && !/\s/.test(s.slice(i + 1, end))) {
        flush();
        link(href, parent).append(document.createTextNode(s.slice(i + 1, end)));
        i = end + 1;
        continue;
      }
    }
    // A bare http(s) URL, at the start of a word.
    if ((c === "h" || c === "H") && (i === 0 || /[\s(]/.test(s[i - 1])) && !parent.closest?.("a")) {
      const m = BARE_URL.exec(s.slice(i));
      const href = m ? safeURL(m[0]) : "";
      if (href) {
        flush();
        link(href, parent).append(document.createTextNode(m[0]));
        i += m[0].length;
        continue;
      }
    }
    // **strong**, __strong__, *em*, _em_, ~~del~~.
    if ((c === "*" || c === "_" || c === "~") && depth < MAX_DEPTH) {
      const e = emphasisAt(s, i);
      if (e) {
        flush();
        const node = document.createElement(e.tag);
        inline(s.slice(e.from, e.to), node, depth + 1);
        parent.append(node);
        i = e.end;
        continue;
      }
    }
    text += c;
    i++;
  }
  flush();
}

// inlineNoLinks renders a link's label: emphasis and code, no links in it.
function inlineNoLinks(s, parent, depth) {
  const holder = document.createElement("span");
  inline(s, holder, depth);
  for (const a of holder.querySelectorAll("a")) a.replaceWith(...a.childNodes);
  parent.append(...holder.childNodes);
}

// findRun returns the index of a run of exactly n ch at or after from, or -1.
function findRun(s, ch, n, from) {
  for (let j = s.indexOf(ch, from); j >= 0; j = s.indexOf(ch, j)) {
    let k = 0;
    while (s[j + k] === ch) k++;
    if (k === n) return j;
    j += k;
  }
  return -1;
}

// linkAt parses [text](url "title") at s[open] === "[".
function linkAt(s, open) {
  let depth = 0;
  let j = open;
  for (; j < s.length; j++) {
    if (s[j] === "\\") {
      j++;
      continue;
    }
    if (s[j] === "[") depth++;
    else if (s[j] === "]" && --depth === 0) break;
  }
  if (j >= s.length || s[j + 1] !== "(") return null;
  let k = j + 2;
  let parens = 0;
  for (; k < s.length; k++) {
    if (s[k] === "(") parens++;
    else if (s[k] === ")") {
      if (parens === 0) break;
      parens--;
    } else if (s[k] === " " && s[k + 1] === '"') {
      const q = s.indexOf('"', k + 2);
      if (q > 0 && s[q + 1] === ")") {
        return { text: s.slice(open + 1, j), url: s.slice(j + 2, k), end: q + 2 };
      }
    }
  }
  if (k >= s.length) return null;
  let url = s.slice(j + 2, k).trim();
  if (url.startsWith("<") && url.endsWith(">")) url = url.slice(1, -1);
  return { text: s.slice(open + 1, j), url, end: k + 1 };
}

// emphasisAt finds the emphasis opened at s[i]: its tag, the range of its
// text and where it ends; null if the delimiter does not open one.
function emphasisAt(s, i) {
  const c = s[i];
  const double = s[i + 1] === c;
  if (c === "~" && !double) return null;
  const delim = double ? c + c : c;
  const from = i + delim.length;
  // An opener is followed by text, not a space (and "_" not inside a word).
  if (from >= s.length || /\s/.test(s[from]) || s[from] === c) return null;
  if (c === "_" && i > 0 && /[\p{L}\p{N}]/u.test(s[i - 1])) return null;
  for (let j = s.indexOf(delim, from + 1); j >= 0; j = s.indexOf(delim, j + 1)) {
    if (/\s/.test(s[j - 1])) continue;
    if (!double && s[j + 1] === c) {
      j++; // part of a longer run: not this closer
      continue;
    }
    if (c === "_" && j + delim.length < s.length && /[\p{L}\p{N}]/u.test(s[j + delim.length])) continue;
    const tag = c === "~" ? "del" : double ? "strong" : "em";
    return { tag, from, to: j, end: j + delim.length };
  }
  return null;
}
