// The page audit of browsertest.Audit, evaluated in the page under test. It
// resolves to a JSON-able report:
//   - contrast: every piece of visible text (text nodes, form control
//     values and placeholders, SVG text) whose contrast against the
//     background behind it is under the minimum, computed from the
//     computed colours as WCAG 2 defines it (relative luminance, alpha and
//     opacity composited over the backgrounds of the element's ancestors);
//   - unknownBackground: text over a background image, which cannot be
//     measured (the design system puts text over plain colours only);
//   - unlabelled: controls (buttons, links, inputs, selects, text areas)
//     without an accessible name;
//   - overflow: the page is wider than the viewport (horizontal scrolling),
//     with the elements that stick out.
async (minRatio) => {
  // Let running transitions end: a colour caught mid-transition (a theme
  // just switched) is not the colour the reader sees.
  await Promise.all(document.getAnimations()
    .filter((a) => a.effect && a.effect.getComputedTiming().iterations !== Infinity)
    .map((a) => a.finished.catch(() => {})));

  const parse = (c) => {
    if (!c) return null;
    let m = /^rgba?\(([^)]*)\)$/.exec(c);
    if (m) {
      const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
      return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
    }
    m = /^color\(srgb ([^)]*)\)$/.exec(c);
    if (m) {
      const p = m[1].split(/[\s/]+/).filter(Boolean).map(Number);
      return { r: p[0] * 255, g: p[1] * 255, b: p[2] * 255, a: p.length > 3 ? p[3] : 1 };
    }
    return null;
  };
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const lum = (c) => {
    const f = (v) => {
      v /= 255;
      return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const ratio = (a, b) => {
    const la = lum(a), lb = lum(b);
    return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
  };
  const hex = (c) => '#' + [c.r, c.g, c.b].map((v) => Math.round(v).toString(16).padStart(2, '0')).join('');
  const describe = (el) => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += '#' + el.id;
    if (typeof el.className === 'string' && el.className.trim()) s += '.' + el.className.trim().split(/\s+/).join('.');
    const parent = el.parentElement;
    if (parent && !el.id) s = describeShort(parent) + ' > ' + s;
    return s;
  };
  const describeShort = (el) => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += '#' + el.id;
    else if (typeof el.className === 'string' && el.className.trim()) s += '.' + el.className.trim().split(/\s+/)[0];
    return s;
  };

  // The background behind el: its own and its ancestors' colours,
  // composited from the first opaque one up; null over an image.
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const cs = getComputedStyle(e);
      if (cs.backgroundImage && cs.backgroundImage !== 'none') return null;
      const c = parse(cs.backgroundColor);
      if (c && c.a > 0) {
        layers.push(c);
        if (c.a >= 1) break;
      }
    }
    let bg = { r: 255, g: 255, b: 255, a: 1 };
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  };
  const opacity = (el) => {
    let o = 1;
    for (let e = el; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity);
    return o;
  };
  const hiddenForA11yOnly = (el) => {
    const r = el.getBoundingClientRect();
    return r.width <= 1 && r.height <= 1;
  };
  const rendered = (el) => {
    if (!el.getClientRects().length) return false;
    const cs = getComputedStyle(el);
    return cs.visibility === 'visible' && !hiddenForA11yOnly(el);
  };
  const disabled = (el) => !!el.closest(':disabled, [aria-disabled="true"], [inert]');

  const report = { contrast: [], unknownBackground: [], unlabelled: [], overflow: null, checked: 0 };
  const check = (el, colour, text, what) => {
    const fg = parse(colour);
    if (!fg) {
      report.unknownBackground.push({ element: describe(el), text, why: 'unparsed colour ' + colour });
      return;
    }
    const bg = background(el);
    if (!bg) {
      report.unknownBackground.push({ element: describe(el), text, why: 'text over a background image' });
      return;
    }
    fg.a *= opacity(el);
    const r = ratio(over(fg, bg), bg);
    report.checked++;
    if (r < minRatio) report.contrast.push({ element: describe(el), text, what, color: hex(over(fg, bg)), background: hex(bg), ratio: Math.round(r * 100) / 100 });
  };

  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || seen.has(el) || !n.textContent.trim()) continue;
    seen.add(el);
    if (el.closest('script, style, noscript, template, option') || !rendered(el) || disabled(el)) continue;
    const svg = el instanceof SVGElement;
    const cs = getComputedStyle(el);
    check(el, svg ? cs.fill : cs.color, n.textContent.trim().slice(0, 60), svg ? 'svg text' : 'text');
  }
  for (const el of document.querySelectorAll('input, textarea, select')) {
    if (el.type === 'hidden' || el.type === 'checkbox' || el.type === 'radio' || !rendered(el) || disabled(el)) continue;
    if (el.value) check(el, getComputedStyle(el).color, el.value.slice(0, 60), 'value');
    else if (el.placeholder) check(el, getComputedStyle(el, '::placeholder').color, el.placeholder.slice(0, 60), 'placeholder');
  }

  // Accessible names, as far as a page can compute them.
  const labelText = (el) => {
    const parts = [];
    const by = el.getAttribute('aria-labelledby');
    if (by) for (const id of by.split(/\s+/)) parts.push((document.getElementById(id) || {}).textContent || '');
    parts.push(el.getAttribute('aria-label') || '');
    if (el.labels) for (const l of el.labels) parts.push(l.innerText || l.textContent);
    if (el.matches('button, a, [role="button"], summary')) {
      parts.push(el.innerText);
      for (const img of el.querySelectorAll('img[alt]')) parts.push(img.alt);
    }
    parts.push(el.getAttribute('title') || '');
    return parts.join(' ').trim();
  };
  for (const el of document.querySelectorAll('button, a[href], input, select, textarea, [role="button"], summary')) {
    if (el.type === 'hidden' || !el.getClientRects().length) continue;
    if (!labelText(el)) report.unlabelled.push(describe(el));
  }

  const root = document.documentElement;
  const width = root.clientWidth;
  if (root.scrollWidth > width) {
    const out = [];
    for (const el of document.body.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      if (r.right > width + 0.5 && rendered(el)) out.push(`${describe(el)} (right edge ${Math.round(r.right)} px)`);
      if (out.length >= 8) break;
    }
    report.overflow = { viewport: width, scrollWidth: root.scrollWidth, elements: out };
  }
  return report;
}
