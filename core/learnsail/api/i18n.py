"""User-facing messages in English (the source) and Simplified Chinese,
chosen by the Accept-Language header."""

from __future__ import annotations

from typing import Any

ZH_CN = {
    "The request is invalid.": "请求无效。",
    "The request has invalid fields.": "请求包含无效字段。",
    "Authentication is required or has failed.": "需要认证或认证失败。",
    "You do not have permission to do this.": "权限不足。",
    "The resource does not exist.": "资源不存在。",
    "This method is not allowed here.": "不允许使用此请求方法。",
    "The requested representation is not available.": "无法提供所请求的格式。",
    "The request conflicts with the current state.": "请求与当前状态冲突。",
    "The request body is too large.": "请求体过大。",
    "The request body has an unsupported media type.": "不支持的请求体类型。",
    "Too many requests; retry later.": "请求过于频繁，请稍后重试。",
    "The service is temporarily unavailable.": "服务暂时不可用。",
    "An internal error occurred; it has been logged.": "服务器内部错误，已记录。",
    "The request cannot be served.": "无法处理该请求。",
    "Invalid username or password.": "用户名或密码错误。",
}

CATALOGS = {"zh": ZH_CN}


def locale(request: Any) -> str:
    try:
        best = request.accept_language.lookup(["en", "zh-CN", "zh"], default="en")
    except Exception:  # a malformed header falls back to English
        return "en"
    return "zh" if best.lower().startswith("zh") else "en"


def translate(request: Any, message: str) -> str:
    catalog = CATALOGS.get(locale(request))
    return catalog.get(message, message) if catalog else message
