// A contact sheet of any number of photos: cells of one size in even rows, and only the
// rows in view (and a few around them) exist in the page, so a project of 5,000 photos
// costs the browser what one of 50 does. Cards are reused as the sheet scrolls; `fill`
// draws a photo into a card and runs only when the card shows another photo or its photo
// changed. The focus stays on the sheet itself; the current card is its active
// descendant, so no card has to keep the focus while cards come and go.
"use strict";
(() => {
  const BUFFER_ROWS = 2;

  function photoGrid(sheet, { cellWidth, cellHeight, create, fill }) {
    const rows = sheet.appendChild(document.createElement("div"));
    rows.className = "sheet-rows";
    let items = []; // what each position shows (keys, in order)
    let size = { width: cellWidth, height: cellHeight };
    let columns = 1;
    const live = new Map(); // position → card
    const spare = [];
    const stamps = new Map(); // key → a change counter, so `refresh` redraws only those
    let drawnRange = [0, -1];

    function layout() {
      columns = Math.max(1, Math.floor(sheet.clientWidth / size.width));
      rows.style.height = `${Math.ceil(items.length / columns) * size.height}px`;
    }

    function range() {
      const first = Math.floor(sheet.scrollTop / size.height) - BUFFER_ROWS;
      const last = Math.ceil((sheet.scrollTop + sheet.clientHeight) / size.height) + BUFFER_ROWS;
      return [Math.max(0, first * columns), Math.min(items.length, last * columns) - 1];
    }

    function place(card, position) {
      card.id = `cell-${position}`;
      card.setAttribute("aria-posinset", String(position + 1));
      card.setAttribute("aria-setsize", String(items.length));
      const row = Math.floor(position / columns);
      const column = position % columns;
      card.style.transform = `translate(${column * size.width}px, ${row * size.height}px)`;
      card.style.width = `${size.width}px`;
      card.style.height = `${size.height}px`;
    }

    // Draw the cards in view: a card showing a photo still in view moves with it (its
    // image stays as it is); cards of photos gone from view are reused for the others.
    function draw() {
      const [from, to] = range();
      const byKey = new Map();
      for (const card of live.values()) byKey.set(card.dataset.key, card);
      live.clear();
      const wanting = [];
      for (let position = from; position <= to; position++) {
        const card = byKey.get(items[position]);
        if (card) {
          byKey.delete(items[position]);
          live.set(position, card);
        } else {
          wanting.push(position);
        }
      }
      spare.push(...byKey.values());
      for (const position of wanting) live.set(position, spare.pop() || rows.appendChild(create()));
      for (const [position, card] of live) {
        const key = items[position];
        const stamp = `${key}#${stamps.get(key) || 0}`;
        place(card, position);
        card.hidden = false;
        if (card.dataset.stamp !== stamp) {
          card.dataset.key = key;
          card.dataset.stamp = stamp;
          card.dataset.fills = String(Number(card.dataset.fills || 0) + 1);
          fill(card, key, position);
        }
      }
      for (const card of spare) card.hidden = true;
      drawnRange = [from, to];
    }

    let scheduled = false;
    function drawSoon() {
      if (scheduled) return;
      scheduled = true;
      requestAnimationFrame(() => {
        scheduled = false;
        draw();
      });
    }

    sheet.addEventListener("scroll", drawSoon, { passive: true });
    new ResizeObserver(() => {
      layout();
      draw();
    }).observe(sheet);

    return {
      get columns() { return columns; },
      get items() { return items; },
      // Show these keys, in this order (the filter's and the sort's); cards of photos
      // still in view at the same place are not drawn again.
      show(keys) {
        items = keys;
        layout();
        draw();
      },
      // These photos changed: their cards (if in view) are drawn again, no other.
      refresh(keys) {
        for (const key of keys) stamps.set(key, (stamps.get(key) || 0) + 1);
        draw();
      },
      resize(width, height) {
        size = { width, height };
        layout();
        draw();
      },
      cardOf(key) {
        for (const card of live.values()) if (card.dataset.key === key) return card;
        return null;
      },
      // Bring a position into view (the least scrolling that shows its whole row).
      reveal(position) {
        if (position < 0) return;
        const top = Math.floor(position / columns) * size.height;
        if (top < sheet.scrollTop) sheet.scrollTop = top;
        else if (top + size.height > sheet.scrollTop + sheet.clientHeight) {
          sheet.scrollTop = top + size.height - sheet.clientHeight;
        }
        draw();
      },
      // Where a position's row is, from the top of the view (to keep it there when
      // photos arrive before it).
      offsetOf(position) {
        return Math.floor(position / columns) * size.height - sheet.scrollTop;
      },
      keepAt(position, offset) {
        sheet.scrollTop = Math.floor(position / columns) * size.height - offset;
        draw();
      },
      positionAt(x, y) {
        const box = sheet.getBoundingClientRect();
        const column = Math.floor((x - box.left) / size.width);
        const row = Math.floor((y - box.top + sheet.scrollTop) / size.height);
        const position = row * columns + column;
        return column < columns && position < items.length ? position : -1;
      },
      drawn: () => drawnRange,
    };
  }

  enlarger.photoGrid = photoGrid;
})();
