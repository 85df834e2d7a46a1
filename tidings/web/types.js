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
 * @property {string} body
 * @property {string | null} client_msg_id
 * @property {string} sent_at       ISO 8601 with milliseconds and Z
 * @property {boolean} time_separator
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
 */

/**
 * @typedef {object} Group
 * @property {number} id
 * @property {string} name
 * @property {number} owner_id
 * @property {number[]} member_ids
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
 *   {type: "error", ref?: unknown, code: string, message: string} |
 *   {type: "pong", ref?: unknown} |
 *   {type: "push", event: unknown}
 * )} ServerFrame
 */

/**
 * A frame the client sends.
 * @typedef {(
 *   {type: "auth", token: string} |
 *   {type: "send", ref?: unknown, conversation: string, body: string, client_msg_id?: string} |
 *   {type: "read", ref?: unknown, conversation: string, seq: number} |
 *   {type: "ping", ref?: unknown}
 * )} ClientFrame
 */

export {};
