//! `WsBytes` between two real WebSocket ends (async-tungstenite's client and server over an in-process
//! pipe): bytes written as separate messages read back as one stream, a read smaller than a message takes
//! the rest on the next read, a close reads as end of file, a text message is an error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_tungstenite::WebSocketStream;
use async_tungstenite::tokio::TokioAdapter;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tungstenite::Message;
use ws_stream::WsBytes;

type Ws = WebSocketStream<TokioAdapter<DuplexStream>>;

/// A client and a server WebSocket connected to each other.
async fn pair() -> (Ws, Ws) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(async_tungstenite::tokio::accept_async(b));
    let (client, _) = async_tungstenite::tokio::client_async("ws://localhost/", a)
        .await
        .unwrap();
    (client, server.await.unwrap().unwrap())
}

#[tokio::test]
async fn messages_make_one_byte_stream_both_ways() {
    let (client, server) = pair().await;
    let (mut client, mut server) = (WsBytes::new(client), WsBytes::new(server));
    client.write_all(b"hello ").await.unwrap();
    client.write_all(b"world").await.unwrap();
    client.flush().await.unwrap();
    let mut got = [0u8; 11];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hello world");

    // A read smaller than the message: the rest comes on the next reads.
    server.write_all(b"0123456789").await.unwrap();
    server.flush().await.unwrap();
    let mut first = [0u8; 4];
    client.read_exact(&mut first).await.unwrap();
    let mut rest = [0u8; 6];
    client.read_exact(&mut rest).await.unwrap();
    assert_eq!((&first, &rest), (b"0123", b"456789"));
}

#[tokio::test]
async fn a_close_is_the_end_of_the_stream() {
    let (mut client, server) = pair().await;
    let mut server = WsBytes::new(server);
    client.send(Message::binary(b"last".to_vec())).await.unwrap();
    client.close(None).await.unwrap();
    let mut all = Vec::new();
    server.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, b"last");
}

#[tokio::test]
async fn a_text_message_is_invalid_data() {
    let (mut client, server) = pair().await;
    let mut server = WsBytes::new(server);
    client.send(Message::text("not bytes")).await.unwrap();
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), server.read(&mut buf));
    let e = read.await.expect("the text message was skipped").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
}
