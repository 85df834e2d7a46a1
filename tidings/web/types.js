// @ts-check
// The protocol's objects as JSDoc types (docs/protocol.md). Nothing runs here.

/**
 * @typedef {object} User
 * @property {number} id
 * @property {string} username
 * @property {string} display_name
 */

/**
 * @typedef {object} Message
 * @property {string} id            "{conversation}#{seq}"
 * @property {string} conversation  "p:{a}-{b}" or "g:{group}"
 * @property {number} seq           1, 2, 3, ... per conversation
 * @property {number} sender
 * @property {string | null} body   null once recalled
 * @property {string | null} client_msg_id
 * @property {string} sent_at       ISO 8601 with milliseconds and Z
 * @property {boolean} time_separator
 * @property {string} [kind]        v2: text, image, file, voice; notices: recall, edit, system
 * @property {Attachment | null} [attachment]  v2: the file of an image, file or voice message
 * @property {{seq: number, sender: number, kind: string, preview: string | null} | null} [reply_to]
 * @property {{conversation: string, seq: number, sender: number} | null} [forwarded_from]
 * @property {number[]} [mentions]
 * @property {boolean} [mention_all]
 * @property {number | null} [target_seq]  a notice's target
 * @property {boolean} [recalled]
 * @property {string | null} [edited_at]
 * @property {unknown} [system]
 * @property {number} [recalled_by]  this client's note: who recalled it (from the notice)
 */

/**
 * @typedef {object} Attachment  PROTOCOL-v2 §3: an uploaded file; its links are signed and expire.
 * @property {string} id
 * @property {string} name
 * @property {number} size
 * @property {string} content_type
 * @property {number | null} [width]
 * @property {number | null} [height]
 * @property {number | null} [duration_ms]
 * @property {string} url
 * @property {string | null} [thumbnail_url]
 */

/**
 * @typedef {object} Conversation  One entry of the chat list.
 * @property {string} id
 * @property {"private" | "group"} type
 * @property {string} title
 * @property {number | null} peer_id
 * @property {number | null} group_id
 * @property {number} unread
 * @property {number} last_seq
 * @property {number} read_seq
 * @property {Message | null} last_message
 * @property {string} updated_at
 * @property {number | null} [peer_read_seq]
 * @property {number} [mentioned]   v2: unread messages that mention this user or all
 * @property {boolean} [pinned]      v2 §5: what the user keeps on the entry, on every device
 * @property {boolean} [muted]
 * @property {boolean} [marked_unread]
 * @property {{body: string, updated_at: string} | null} [draft]
 * @property {boolean} [hidden]      listed only with ?hidden=true (an extension)
 */

/**
 * @typedef {object} ReadBy  PROTOCOL-v2 §6: who of the members who could see a message read it.
 * @property {number} seq
 * @property {number} read
 * @property {number} unread
 * @property {number[]} read_ids
 * @property {number[]} unread_ids
 */

/**
 * @typedef {object} Announcement
 * @property {string} text
 * @property {string} updated_at
 * @property {number | null} by
 */

/**
 * @typedef {object} Group
 * @property {number} id
 * @property {string} name
 * @property {number} owner_id
 * @property {number[]} member_ids
 * @property {number[]} [admin_ids]
 * @property {Announcement | null} [announcement]
 * @property {boolean} [muted_all]
 * @property {number[]} [muted_ids]
 * @property {Record<string, string>} [mutes]
 * @property {boolean} [dissolved]
 */

/**
 * @typedef {object} Session
 * @property {string} token
 * @property {User} user
 */

/**
 * A frame the server sends. `ref` echoes the client frame's, when it had one.
 * @typedef {(
 *   {type: "auth_ok", user: User} |
 *   {type: "message", message: Message} |
 *   {type: "ack", ref?: unknown, message?: Message, conversation?: Conversation} |
 *   {type: "read", conversation: string, user: number, seq: number} |
 *   {type: "conversation", conversation: Conversation} |
 *   {type: "conversation_removed", conversation: string} |
 *   {type: "typing", conversation: string, user: number} |
 *   {type: "error", ref?: unknown, code: string, message: string} |
 *   {type: "pong", ref?: unknown} |
 *   {type: "push", event: unknown}
 * )} ServerFrame
 */

/**
 * A frame the client sends.
 * @typedef {(
 *   {type: "auth", token: string} |
 *   {type: "send", ref?: unknown, conversation: string, body: string, client_msg_id?: string,
 *    reply_to?: number, mentions?: number[], mention_all?: boolean,
 *    kind?: "image" | "file" | "voice", file_id?: string} |
 *   {type: "read", ref?: unknown, conversation: string, seq: number} |
 *   {type: "typing", conversation: string} |
 *   {type: "ping", ref?: unknown}
 * )} ClientFrame
 */

export {};
