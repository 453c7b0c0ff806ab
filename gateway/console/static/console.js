// Moderator console: keyboard-driven review queue. Plain DOM, no framework, no network beyond
// this server. Data from the server is only ever put into the page with textContent.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const queue = $("queue");
  if (!queue) return;
  const onReportPage = location.pathname.startsWith("/console/reports/");
  const taxonomy = JSON.parse(($("taxonomy-data") || {}).textContent || "[]");
  const rejectReasons = JSON.parse(($("reject-reasons") || {}).textContent || "[]");
  let current = null;
  let target = null; // the item a dialog acts on

  const items = () => Array.from(queue.querySelectorAll(".item"));

  function select(el) {
    if (current) current.classList.remove("selected");
    current = el || null;
    if (!current) return;
    current.classList.add("selected");
    current.focus({ preventScroll: true });
    current.scrollIntoView({ block: "nearest" });
  }

  function move(delta) {
    const list = items();
    if (!list.length) return;
    const i = list.indexOf(current);
    select(list[i < 0 ? 0 : Math.max(0, Math.min(list.length - 1, i + delta))]);
  }

  let toastTimer = null;
  function toast(message, bad) {
    const el = $("toast");
    el.textContent = message;
    el.className = bad ? "bad" : "";
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, bad ? 6000 : 2500);
  }

  function removeItem(item) {
    const list = items();
    const i = list.indexOf(item);
    const next = list[i + 1] || list[i - 1] || null;
    item.remove();
    const counter = $("queue-count");
    if (counter) counter.textContent = String(Math.max(0, Number(counter.textContent) - 1));
    if (!items().length) {
      const empty = document.createElement("p");
      empty.className = "empty card";
      empty.textContent = "队列已清空。";
      queue.appendChild(empty);
    }
    select(next);
  }

  async function act(item, action, fields) {
    const url = `/console/reports/${encodeURIComponent(item.dataset.case)}/actions/${action}`;
    let resp;
    try {
      resp = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
        body: new URLSearchParams(fields || {}),
      });
    } catch (err) {
      toast(`网络错误：${err}`, true);
      return;
    }
    let data = {};
    try { data = await resp.json(); } catch (err) { /* an HTML error page */ }
    if (!resp.ok) {
      toast(data.error || `操作失败（${resp.status}）`, true);
      return;
    }
    toast(`${data.case_number}：${data.message}`);
    if (onReportPage) {
      location.reload();
    } else if (data.status !== "needs_review") {
      removeItem(item);
    } else if (action === "priority") {
      const badge = item.querySelector('[data-role="priority"]');
      badge.textContent = data.priority;
      badge.className = `chip prio prio-${data.priority}`;
      item.classList.toggle("urgent", data.priority === "P1");
    }
  }

  // ------------------------------------------------------------------ category picker

  const picker = $("dlg-picker");
  const search = $("picker-search");
  const list = $("picker-list");
  let pickIndex = 0;

  function renderPicker() {
    const words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    list.replaceChildren();
    const found = taxonomy.filter((e) => {
      const hay = `${e.code} ${e.name} ${e.parent} ${e.kw}`.toLowerCase();
      return words.every((w) => hay.includes(w));
    }).slice(0, 60);
    found.forEach((e, i) => {
      const li = document.createElement("li");
      li.setAttribute("role", "option");
      li.dataset.code = e.code;
      li.className = e.parent ? "sub" : "top";
      li.textContent = `${e.code} ${e.name}${e.parent ? `（${e.parent}）` : ""}`;
      li.addEventListener("click", () => choose(e.code));
      list.appendChild(li);
      if (i === 0) li.setAttribute("aria-selected", "true");
    });
    pickIndex = 0;
  }

  function highlight(delta) {
    const options = Array.from(list.children);
    if (!options.length) return;
    options[pickIndex].removeAttribute("aria-selected");
    pickIndex = (pickIndex + delta + options.length) % options.length;
    options[pickIndex].setAttribute("aria-selected", "true");
    options[pickIndex].scrollIntoView({ block: "nearest" });
  }

  function choose(code) {
    picker.close();
    act(target, "category", { category: code });
  }

  search.addEventListener("input", renderPicker);
  search.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      highlight(ev.key === "ArrowDown" ? 1 : -1);
      ev.preventDefault();
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      const option = list.children[pickIndex];
      if (option) choose(option.dataset.code);
    }
  });

  // ------------------------------------------------------------------ merge, reject, note

  const mergeInput = $("merge-target");
  const mergeList = $("merge-list");

  function openMerge(item) {
    $("merge-self-case").textContent = item.dataset.case;
    const title = item.querySelector(".title");
    $("merge-self-text").textContent = `${title ? `${title.textContent}\n` : ""}${item.querySelector(".text").textContent}`;
    mergeList.replaceChildren();
    const dups = Array.from(item.querySelectorAll(".dup"));
    dups.forEach((dup, i) => {
      const li = document.createElement("li");
      li.dataset.case = dup.dataset.case;
      const head = document.createElement("strong");
      head.textContent = `${i + 1}. ${dup.dataset.case} `;
      const text = document.createElement("p");
      text.className = "dup-text";
      text.textContent = dup.querySelector(".dup-text").textContent;
      li.append(head, dup.querySelector(".chip") ? dup.querySelector(".chip").cloneNode(true) : "", text);
      li.addEventListener("click", () => pickDup(i));
      mergeList.appendChild(li);
    });
    mergeInput.value = "";
    open($("dlg-merge"), mergeInput);
    if (dups.length) pickDup(0);
  }

  function pickDup(i) {
    Array.from(mergeList.children).forEach((li, j) => li.classList.toggle("chosen", i === j));
    const li = mergeList.children[i];
    if (!li) return;
    mergeInput.value = li.dataset.case;
    mergeInput.focus();
    mergeInput.select();
  }

  mergeInput.addEventListener("keydown", (ev) => {
    const all = mergeInput.selectionStart === 0 && mergeInput.selectionEnd === mergeInput.value.length;
    if (/^[1-9]$/.test(ev.key) && all && Number(ev.key) <= mergeList.children.length) {
      ev.preventDefault();
      pickDup(Number(ev.key) - 1);
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      const value = mergeInput.value.trim().toUpperCase();
      if (!value) return;
      $("dlg-merge").close();
      act(target, "merge", { target: value });
    }
  });

  const reasonInput = $("reject-reason");
  rejectReasons.forEach((reason, i) => {
    const li = document.createElement("li");
    li.textContent = `${i + 1}. ${reason}`;
    li.addEventListener("click", () => { reasonInput.value = reason; reasonInput.focus(); });
    $("reject-list").appendChild(li);
  });
  reasonInput.addEventListener("keydown", (ev) => {
    if (/^[1-9]$/.test(ev.key) && !reasonInput.value && Number(ev.key) <= rejectReasons.length) {
      ev.preventDefault();
      reasonInput.value = rejectReasons[Number(ev.key) - 1];
      Array.from($("reject-list").children).forEach((li, j) => li.classList.toggle("chosen", j === Number(ev.key) - 1));
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      if (reasonInput.value.trim().length < 2) { toast("请填写退回原因（会告知居民）", true); return; }
      $("dlg-reject").close();
      act(target, "reject", { reason: reasonInput.value.trim() });
    }
  });

  const noteInput = $("note-text");
  noteInput.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter") return;
    ev.preventDefault();
    if (!noteInput.value.trim()) return;
    $("dlg-note").close();
    act(target, "note", { note: noteInput.value.trim() });
  });

  function open(dialog, input) {
    dialog.showModal();
    input.focus();
  }

  document.querySelectorAll("dialog").forEach((d) => d.addEventListener("close", () => select(target || current)));

  const openers = {
    picker(item) { search.value = ""; renderPicker(); open(picker, search); },
    merge: openMerge,
    reject() { reasonInput.value = ""; Array.from($("reject-list").children).forEach((li) => li.classList.remove("chosen")); open($("dlg-reject"), reasonInput); },
    note() { noteInput.value = ""; open($("dlg-note"), noteInput); },
  };

  function start(name, item) {
    target = item;
    select(item);
    openers[name](item);
  }

  // ------------------------------------------------------------------ wiring

  queue.addEventListener("click", (ev) => {
    const item = ev.target.closest(".item");
    if (!item) return;
    const opener = ev.target.closest("[data-open]");
    const reveal = ev.target.closest("[data-reveal]");
    if (opener) start(opener.dataset.open, item);
    else if (reveal) revealField(item, reveal);
    else if (!ev.target.closest("a, button, input, select")) select(item);
  });

  queue.addEventListener("submit", (ev) => {
    const form = ev.target.closest("form.act");
    if (!form) return;
    ev.preventDefault();
    const item = form.closest(".item");
    select(item);
    act(item, form.dataset.action);
  });

  async function revealField(item, button) {
    const field = button.dataset.reveal;
    const resp = await fetch(`/console/reports/${encodeURIComponent(item.dataset.case)}/pii/${field}`, {
      credentials: "same-origin", headers: { Accept: "application/json" },
    });
    if (!resp.ok) { toast(`无法显示（${resp.status}）`, true); return; }
    const data = await resp.json();
    const el = item.querySelector(`[data-field="${field}"]`);
    if (el) el.textContent = data.value || "";
    if (field === "text" && item.querySelector(".title")) item.querySelector(".title").remove();
    button.remove();
  }

  const keys = { c: "confirm", s: "spam", d: "dispatch" };
  const dialogKeys = { e: "picker", m: "merge", r: "reject", n: "note" };

  document.addEventListener("keydown", (ev) => {
    if (document.querySelector("dialog[open]") || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.target.closest && ev.target.closest("input, textarea, select")) return;
    const k = ev.key;
    if (k === "j" || k === "ArrowDown") { move(1); ev.preventDefault(); return; }
    if (k === "k" || k === "ArrowUp") { move(-1); ev.preventDefault(); return; }
    if (!current) return;
    if (keys[k] && current.querySelector(".actions")) act(current, keys[k]);
    else if (dialogKeys[k] && current.querySelector(".actions")) start(dialogKeys[k], current);
    else if (/^[1-4]$/.test(k)) act(current, "priority", { priority: `P${k}` });
    else if (k === "o" && !onReportPage) location.href = `/console/reports/${encodeURIComponent(current.dataset.case)}`;
    else return;
    ev.preventDefault();
  });

  select(items()[0]);
})();
