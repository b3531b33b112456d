<?php
/**
 * Plugin Name: cartflow carts
 * Description: Sends the WooCommerce cart to cartflow as native cart.updated events, and
 *              writes the cart's id into the order, so that cartflow's WooCommerce door
 *              links the paid order to the cart and its reminders stop.
 * Version:     1.0.0
 * License:     MIT
 *
 * Settings (WordPress options; see README.md next to this file):
 *   cartflow_api_url  where cartflow's API is, e.g. https://events.shop.example
 *   cartflow_api_key  one of cartflow's CARTFLOW_API_KEYS
 *
 * Consent is the shop's to collect: return it from the `cartflow_consent` filter, e.g.
 * ['email' => true]. Without it cartflow stores the cart but sends no reminder.
 */

defined( 'ABSPATH' ) || exit;

/** The cart's id, kept in the WooCommerce session; a new one when there is none. */
function cartflow_cart_id( $create = true ) {
	$id = WC()->session->get( 'cartflow_cart_id' );
	if ( ! $id && $create ) {
		$id = 'wc-' . wp_generate_uuid4();
		WC()->session->set( 'cartflow_cart_id', $id );
	}
	return $id;
}

/** The visitor's id, kept in the session so that it survives logging in. */
function cartflow_anonymous_id() {
	$id = WC()->session->get( 'cartflow_anonymous_id' );
	if ( ! $id ) {
		$id = 'wc-visitor-' . wp_generate_uuid4();
		WC()->session->set( 'cartflow_anonymous_id', $id );
	}
	return $id;
}

/** Posts the whole cart as it is now (no items: emptied) to POST /v1/events. */
function cartflow_send_cart() {
	if ( ! WC()->session || ! WC()->cart ) {
		return;
	}
	$url = rtrim( (string) get_option( 'cartflow_api_url' ), '/' );
	$key = (string) get_option( 'cartflow_api_key' );
	$empty = WC()->cart->is_empty();
	if ( ! $url || ! $key || ( $empty && ! cartflow_cart_id( false ) ) ) {
		return; // not set up, or an empty cart cartflow never saw
	}
	$items = array();
	foreach ( WC()->cart->get_cart() as $line ) {
		$product = $line['data'];
		$item = array(
			'sku'      => $product->get_sku() ? $product->get_sku() : (string) $product->get_id(),
			'name'     => $product->get_name(),
			'price'    => (string) wc_get_price_to_display( $product ),
			'quantity' => (int) $line['quantity'],
			'url'      => get_permalink( $product->get_id() ),
		);
		$image = wp_get_attachment_image_url( $product->get_image_id(), 'woocommerce_thumbnail' );
		if ( $image ) {
			$item['image'] = $image;
		}
		$items[] = $item;
	}
	$customer = WC()->customer;
	$contact = array_filter(
		array(
			'email'      => $customer ? $customer->get_billing_email() : '',
			'phone'      => $customer ? $customer->get_billing_phone() : '',
			'country'    => $customer ? $customer->get_billing_country() : '',
			'first_name' => $customer ? $customer->get_billing_first_name() : '',
			'locale'     => strtok( determine_locale(), '_' ),
		)
	);
	$event = array(
		'id'           => 'wc-' . wp_generate_uuid4(),
		'type'         => 'cart.updated',
		'at'           => gmdate( 'Y-m-d\TH:i:s\Z' ),
		'anonymous_id' => cartflow_anonymous_id(),
		'cart'         => array(
			'id'       => cartflow_cart_id(),
			'currency' => get_woocommerce_currency(),
			'url'      => wc_get_cart_url(),
			'items'    => $items,
		),
	);
	if ( get_current_user_id() > 0 ) {
		$event['customer_id'] = (string) get_current_user_id();
	}
	if ( $contact ) {
		$event['contact'] = $contact;
	}
	$consent = apply_filters( 'cartflow_consent', array(), $customer );
	if ( $consent ) {
		$event['consent'] = $consent;
	}
	wp_remote_post(
		$url . '/v1/events',
		array(
			'headers'  => array(
				'Authorization' => 'Bearer ' . $key,
				'Content-Type'  => 'application/json',
			),
			'body'     => wp_json_encode( $event ),
			'timeout'  => 2,
			'blocking' => false, // the shopper never waits; the next change sends the cart again
		)
	);
}
add_action( 'woocommerce_cart_updated', 'cartflow_send_cart' );
add_action( 'woocommerce_cart_emptied', 'cartflow_send_cart' );

/** At checkout: the cart's and the visitor's ids go into the order's meta (read by the door). */
function cartflow_tag_order( $order ) {
	if ( ! WC()->session ) {
		return;
	}
	$cart_id = cartflow_cart_id( false );
	if ( $cart_id ) {
		$order->update_meta_data( '_cartflow_cart_id', $cart_id );
	}
	$order->update_meta_data( '_cartflow_anonymous_id', cartflow_anonymous_id() );
}
add_action( 'woocommerce_checkout_create_order', 'cartflow_tag_order' ); // classic checkout
add_action( 'woocommerce_store_api_checkout_update_order_meta', 'cartflow_tag_order' ); // blocks

/** Once the order is placed, the next cart is a new one. */
function cartflow_forget_cart() {
	if ( WC()->session ) {
		WC()->session->set( 'cartflow_cart_id', null );
	}
}
add_action( 'woocommerce_checkout_order_processed', 'cartflow_forget_cart' );
add_action( 'woocommerce_store_api_checkout_order_processed', 'cartflow_forget_cart' );
