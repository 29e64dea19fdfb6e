// The page that shows how to mount OpenAI's <openai-chatkit> against this edge. Nothing is loaded from
// the CDN until the button is pressed; the token is the playground's (localStorage).
"use strict";

const CDN = "https://cdn.platform.openai.com/deployments/chatkit/chatkit.js";

for (const node of document.querySelectorAll("[data-origin]")) node.textContent = location.origin;

document.getElementById("mount").addEventListener("click", () => {
  const status = document.getElementById("mount-status");
  const token = localStorage.getItem("switchboard:playground:token");
  if (!token) {
    status.textContent = "Sign in on the playground first: the component uses its token.";
    return;
  }
  status.textContent = "loading from the CDN...";
  const script = document.createElement("script");
  script.src = CDN;
  script.async = true;
  script.onerror = () => (status.textContent = "The CDN cannot be reached from here: use the playground instead.");
  script.onload = async () => {
    await customElements.whenDefined("openai-chatkit");
    const chat = document.createElement("openai-chatkit");
    document.getElementById("mount-point").replaceChildren(chat);
    chat.setOptions({
      api: {
        url: `${location.origin}/chatkit`,
        domainKey: "local-dev",
        fetch: (url, init) =>
          fetch(url, { ...init, headers: { ...(init && init.headers), Authorization: `Bearer ${token}` } }),
      },
    });
    status.textContent = "mounted.";
  };
  document.head.append(script);
});
